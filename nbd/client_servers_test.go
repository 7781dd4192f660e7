package nbd

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/nbdserve"
)

// exerciseClient drives every request kind against a server's export of at
// least 4 MiB and checks the content read back.
func exerciseClient(t *testing.T, c *Client) {
	t.Helper()
	const size = 4 << 20
	want := make([]byte, size)
	data := bytes.Repeat([]byte("aimwan-nbd-client"), 200_000)[:3<<20+123] // longer than one request of some servers
	if err := c.WriteAt(data, 4097); err != nil {
		t.Fatal(err)
	}
	copy(want[4097:], data)
	if c.Info().CanFUA() {
		if err := c.WriteFUA([]byte("fua!"), 10); err != nil {
			t.Fatal(err)
		}
		copy(want[10:], "fua!")
	}
	if err := c.Zero(65536, 1<<20, false); err != nil {
		t.Fatal(err)
	}
	clear(want[65536 : 65536+1<<20])
	if err := c.Zero(3<<20, 4096, true); err != nil {
		t.Fatal(err)
	}
	clear(want[3<<20 : 3<<20+4096])
	if c.Info().CanTrim() {
		// What a trimmed range reads is not defined: trim, then write it.
		if err := c.Discard(2<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteAt(want[2<<20:3<<20], 2<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if err := c.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back: %s", testkit.FirstDiff(want, got))
	}
	if err := c.WriteAt([]byte{1}, c.Size()); !errors.Is(err, ErrRange) {
		t.Fatalf("write past the end: %v, want ErrRange", err)
	}
}

// TestClientQemuNBD: the client against qemu-nbd serving a qcow2, over TCP
// and over a Unix socket (nbd+unix URI); the image is checked with qemu-img.
func TestClientQemuNBD(t *testing.T) {
	for _, unix := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "unix"}[unix]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "v.qcow2")
			nbdserve.QemuImg(t, "create", "-q", "-f", "qcow2", img, "4M")
			var s *nbdserve.Server
			if unix {
				s = nbdserve.QemuNBDUnix(t, img, "qcow2", "disk")
			} else {
				s = nbdserve.QemuNBD(t, img, "qcow2", "disk")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := DialURI(ctx, s.URI)
			if err != nil {
				t.Fatal(err)
			}
			info := c.Info()
			if info.Size != 4<<20 || info.ReadOnly() || !info.CanFlush() || !info.CanZero() || !info.CanTrim() || !info.CanFUA() {
				t.Fatalf("qemu-nbd export info %+v: want 4 MiB, writable, FLUSH, WRITE_ZEROES, TRIM, FUA", info)
			}
			if info.MinBlock != 1 || info.MaxBlock != 32<<20 {
				t.Errorf("qemu-nbd block sizes %+v, want min 1, max 32 MiB", info)
			}
			exerciseClient(t, c)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			s.Stop()
			raw := filepath.Join(dir, "v.raw")
			nbdserve.QemuImg(t, "convert", "-f", "qcow2", "-O", "raw", img, raw)
			b := testkit.ReadFile(t, raw)
			if !bytes.Equal(b[4097:4097+17], []byte("aimwan-nbd-client")) {
				t.Fatal("the qcow2 does not hold what the client wrote")
			}
			if _, err := DialURI(ctx, "nbd+unix:///disk?socket="+filepath.Join(dir, "none.sock")); !errors.Is(err, ErrConnection) {
				t.Fatalf("dial of a missing socket: %v, want ErrConnection", err)
			}
		})
	}
}

// TestClientQemuNBDUnknownExport: NBD_OPT_GO for a name qemu-nbd does not
// serve fails with ErrNoExport and the server's message.
func TestClientQemuNBDUnknownExport(t *testing.T) {
	img := filepath.Join(t.TempDir(), "v.qcow2")
	nbdserve.QemuImg(t, "create", "-q", "-f", "qcow2", img, "1M")
	s := nbdserve.QemuNBD(t, img, "qcow2", "disk")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Dial(ctx, s.Addr, "other")
	if !errors.Is(err, ErrNoExport) {
		t.Fatalf("Dial of an unknown export: %v, want ErrNoExport", err)
	}
	c, err := Dial(ctx, s.Addr, "disk") // the refused session did not hold the only slot
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestClientNbdkit: the client against nbdkit's memory plugin, a read-only
// export, and the blocksize-policy filter's minimum block size.
func TestClientNbdkit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("memory", func(t *testing.T) {
		s := nbdserve.Nbdkit(t, "memory", "size=8M")
		c, err := DialURI(ctx, s.URI)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Size() != 8<<20 {
			t.Fatalf("size %d", c.Size())
		}
		exerciseClient(t, c)
	})
	t.Run("read-only", func(t *testing.T) {
		s := nbdserve.Nbdkit(t, "--readonly", "memory", "size=1M")
		c, err := DialURI(ctx, s.URI)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Info().ReadOnly() {
			t.Fatal("nbdkit --readonly: export not read-only")
		}
		if err := c.WriteAt([]byte{1}, 0); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("write to a read-only export: %v, want EROFS", err)
		}
	})
	t.Run("block-size", func(t *testing.T) {
		s := nbdserve.Nbdkit(t, "--filter=blocksize-policy", "memory", "size=1M",
			"blocksize-minimum=4096", "blocksize-preferred=65536", "blocksize-maximum=262144", "blocksize-error-policy=error")
		c, err := DialURI(ctx, s.URI)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i := c.Info(); i.MinBlock != 4096 || i.PreferredBlock != 65536 || i.MaxBlock != 262144 {
			t.Fatalf("block sizes %+v, want 4096/65536/262144", i)
		}
		data := bytes.Repeat([]byte{7}, 1<<20) // split into 4 requests of the maximum
		if err := c.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		err = c.WriteAt([]byte{1}, 100) // unaligned: the server refuses it, the connection stays
		var re *RemoteError
		if !errors.As(err, &re) || re.Errno != syscall.EINVAL {
			t.Fatalf("unaligned write: %v, want EINVAL from the server", err)
		}
		got := make([]byte, 1<<20)
		if err := c.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back after a refused write: %v", err)
		}
	})
	t.Run("write-errors", func(t *testing.T) {
		s := nbdserve.Nbdkit(t, "--filter=error", "memory", "size=1M", "error-pwrite=ENOSPC", "error-pwrite-rate=100%")
		c, err := DialURI(ctx, s.URI)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.WriteAt([]byte("x"), 0)
		if !errors.Is(err, ErrRemote) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write on a failing export: %v, want ErrRemote wrapping ENOSPC", err)
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("the connection should stay usable after an error reply: %v", err)
		}
	})
}
