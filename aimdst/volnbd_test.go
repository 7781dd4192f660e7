package aimdst

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/nbdserve"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
)

const nbdVolSize = 4 << 20

// nbdJournal is a journal of n random writes, zeros and trims on the first
// half of a 4 MiB volume, with snapshot markers "early" (mid-file) and
// "late".
func nbdJournal(t *testing.T, seed uint64, n int) generated {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 17))
	ops := randomOps(rng, nbdVolSize/2, n, map[int]journal.Record{
		n / 3: {Kind: journal.KindSnapshot, Label: "early"}, n - 1: {Kind: journal.KindSnapshot, Label: "late"}})
	return writeJournal(t, t.TempDir(), "vol", nbdVolSize, ops)
}

// nbdNode is a test node whose volume is the NBD export at uri.
func nbdNode(t *testing.T, uri string, mod func(*Config)) *testNode {
	t.Helper()
	return newTestNode(t, func(c *Config) {
		c.Volumes[0].Path = uri
		if mod != nil {
			mod(c)
		}
	})
}

// readExport reads the whole export at uri.
func readExport(t *testing.T, uri string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := nbd.DialURI(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, c.Size())
	if err := c.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSnapshots compares the node's snapshots with the expected images.
func checkSnapshots(t *testing.T, tn *testNode, g generated) {
	t.Helper()
	for label, want := range g.snaps {
		p := SnapshotPath(tn.cfg.SnapshotDir, "vol", label)
		if got := testkit.ReadFile(t, p); !bytes.Equal(got, want) {
			t.Errorf("snapshot %s: %s", label, testkit.FirstDiff(want, got))
		}
	}
}

// TestDestageToNBD destages a random journal (with snapshot markers) into
// the NBD servers a DR site runs: qemu-nbd over a qcow2 (TCP and Unix
// socket) and a raw image, nbdkit's memory plugin, nbdkit without
// WRITE_ZEROES, and nbdkit with a 4 KiB minimum block size (unaligned
// records rewritten as whole blocks). The export, read back, equals the
// in-order result; a qcow2 is also compared with qemu-img after the server
// stopped; snapshots are copies read over NBD, sparse.
func TestDestageToNBD(t *testing.T) {
	g := nbdJournal(t, 3, 400)
	img := func(t *testing.T, format string) string {
		p := filepath.Join(t.TempDir(), "dr."+format)
		nbdserve.QemuImg(t, "create", "-q", "-f", format, p, "4M")
		return p
	}
	cases := []struct {
		name  string
		serve func(t *testing.T) (*nbdserve.Server, string) // server, qcow2 path or ""
	}{
		{"qemu-nbd qcow2", func(t *testing.T) (*nbdserve.Server, string) {
			p := img(t, "qcow2")
			return nbdserve.QemuNBD(t, p, "qcow2", "vol"), p
		}},
		{"qemu-nbd qcow2 unix socket", func(t *testing.T) (*nbdserve.Server, string) {
			p := img(t, "qcow2")
			return nbdserve.QemuNBDUnix(t, p, "qcow2", "vol"), p
		}},
		{"qemu-nbd raw", func(t *testing.T) (*nbdserve.Server, string) {
			return nbdserve.QemuNBD(t, img(t, "raw"), "raw", "vol"), ""
		}},
		{"nbdkit memory", func(t *testing.T) (*nbdserve.Server, string) {
			return nbdserve.Nbdkit(t, "memory", "size=4M"), ""
		}},
		{"nbdkit without WRITE_ZEROES", func(t *testing.T) (*nbdserve.Server, string) {
			return nbdserve.Nbdkit(t, "--filter=nozero", "memory", "size=4M"), ""
		}},
		{"nbdkit 4 KiB blocks", func(t *testing.T) (*nbdserve.Server, string) {
			return nbdserve.Nbdkit(t, "--filter=blocksize-policy", "memory", "size=4M",
				"blocksize-minimum=4096", "blocksize-error-policy=error"), ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, qcow2 := tc.serve(t)
			tn := nbdNode(t, srv.URI, nil)
			deliverAll(t, tn.n, "vol", g.files)
			if err := destageAll(tn.n, "vol"); err != nil {
				t.Fatal(err)
			}
			if st := tn.n.Status().Volumes[0]; st.DestagedFile != uint64(len(g.files)) {
				t.Fatalf("destaged %d of %d files", st.DestagedFile, len(g.files))
			}
			if got := readExport(t, srv.URI); !bytes.Equal(got, g.final) {
				t.Fatalf("export after destage: %s", testkit.FirstDiff(g.final, got))
			}
			checkSnapshots(t, tn, g)
			var st unix.Stat_t
			if err := unix.Stat(SnapshotPath(tn.cfg.SnapshotDir, "vol", "late"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 > nbdVolSize/2 {
				t.Errorf("snapshot of a half-empty volume allocates %d bytes: not sparse", st.Blocks*512)
			}
			if qcow2 != "" {
				srv.Stop()
				raw := filepath.Join(t.TempDir(), "want.raw")
				if err := os.WriteFile(raw, g.final, 0o600); err != nil {
					t.Fatal(err)
				}
				nbdserve.QemuImg(t, "compare", "-q", "-f", "raw", "-F", "qcow2", raw, qcow2)
			}
		})
	}
}

// TestNBDVolumeRefused: an export that cannot take the volume (too small,
// read-only, unknown name, nobody listening, failing writes, full) leaves
// the volume offline with the reason, destages nothing, keeps every file,
// and once the export is right (the same URI now reaching a good server)
// everything is destaged, byte-identical.
func TestNBDVolumeRefused(t *testing.T) {
	g := smallJournal(t, 11, map[int]journal.Record{15: {Kind: journal.KindSnapshot, Label: "s"}})
	dead := testkit.FreeAddr(t)
	cases := []struct {
		name   string
		bad    func(t *testing.T) string // address of the bad server
		reason string
	}{
		{"too small", func(t *testing.T) string { return nbdserve.Nbdkit(t, "memory", "size=32K").Addr }, "too small"},
		{"read-only", func(t *testing.T) string { return nbdserve.Nbdkit(t, "--readonly", "memory", "size=64K").Addr }, "read-only"},
		{"unknown export", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "o.qcow2")
			nbdserve.QemuImg(t, "create", "-q", "-f", "qcow2", p, "64K")
			return nbdserve.QemuNBD(t, p, "qcow2", "other").Addr
		}, "missing"},
		{"nobody listening", func(t *testing.T) string { return dead }, "unreachable"},
		{"write errors", func(t *testing.T) string {
			return nbdserve.Nbdkit(t, "--filter=error", "memory", "size=64K", "error-pwrite=EIO", "error-pwrite-rate=100%").Addr
		}, "input/output error"},
		{"full", func(t *testing.T) string { return nbdserve.Nbdkit(t, "full", "size=64K").Addr }, "disk full"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := nbdserve.Nbdkit(t, "memory", "size=64K")
			px := newSwitchProxy(t, tc.bad(t))
			tn := nbdNode(t, "nbd://"+px.addr()+"/vol", nil)
			tn.serve(t)
			deliverAll(t, tn.n, "vol", g.files)
			testkit.WaitFor(t, 20*time.Second, "offline: "+tc.reason, func() bool {
				v := tn.n.Status().Volumes[0]
				return v.Offline && strings.Contains(v.State, tc.reason)
			})
			if v := tn.n.Status().Volumes[0]; v.DestagedFile != 0 || v.FilesWaiting != len(g.files) {
				t.Fatalf("offline volume: %+v", v)
			}
			px.set(good.Addr)
			testkit.WaitFor(t, 20*time.Second, "destage once the export is right", destaged(tn.n, len(g.files)))
			if got := readExport(t, good.URI); !bytes.Equal(got, g.final) {
				t.Fatalf("export: %s", testkit.FirstDiff(g.final, got))
			}
			checkSnapshots(t, tn, g)
		})
	}
}

// TestOfflineReasonsNBD maps NBD errors to the offline reasons of status.
func TestOfflineReasonsNBD(t *testing.T) {
	cases := map[string]error{
		"unreachable":     errors.Join(errNBDUnreachable, nbd.ErrConnection),
		"connection lost": nbd.ErrConnection,
		"protocol error":  nbd.ErrServerProtocol,
		"missing":         nbd.ErrNoExport,
		"too small":       errTooSmall,
		"disk full":       &nbd.RemoteError{Command: "WRITE", Errno: unix.ENOSPC},
		"read-only":       &nbd.RemoteError{Command: "WRITE", Errno: unix.EPERM},
	}
	for want, err := range cases {
		if got := offlineReason(err); got != want {
			t.Errorf("offlineReason(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestNBDVolumeConfig refuses NBD URIs that cannot work and create where it
// cannot apply.
func TestNBDVolumeConfig(t *testing.T) {
	cases := []struct {
		vc   VolumeConfig
		says string
	}{
		{VolumeConfig{Name: "v", Path: "nbds://h/e"}, "TLS"},
		{VolumeConfig{Name: "v", Path: "nbd+unix:///e"}, "socket=PATH"},
		{VolumeConfig{Name: "v", Path: "nbd://"}, "no host"},
		{VolumeConfig{Name: "v", Path: "nbd://h:99999999/e"}, "invalid NBD URI"},
		{VolumeConfig{Name: "v", Path: "rbd://pool/image"}, "a rbd:// URI is not a volume"},
		{VolumeConfig{Name: "v", Path: "nbd://h/e", Create: true}, "create does not apply to an NBD volume"},
		{VolumeConfig{Name: "v", Path: "/dev/vg0/dr", Create: true}, "create does not apply to a device path"},
	}
	for _, tc := range cases {
		_, err := NewNode(Config{BufferDir: t.TempDir(), Volumes: []VolumeConfig{tc.vc}, Logger: discardLog()})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: %v; want ErrConfig saying %q", tc.vc, err, tc.says)
		}
	}
	if _, err := NewNode(Config{BufferDir: t.TempDir(), Logger: discardLog(),
		Volumes: []VolumeConfig{{Name: "v", Path: "nbd+unix:///e?socket=/run/q.sock"}}}); err != nil {
		t.Errorf("a valid nbd+unix URI refused: %v", err)
	}
}

// TestNBDVolumeOneConnection: destage of many journal files (snapshots
// included) into qemu-nbd uses one connection while it has files to apply,
// and closes it when idle, so that the single client slot qemu-nbd gives by
// default is free again (readExport would not get in otherwise).
func TestNBDVolumeOneConnection(t *testing.T) {
	g := nbdJournal(t, 21, 300)
	if len(g.files) < 20 {
		t.Fatalf("only %d journal files", len(g.files))
	}
	p := filepath.Join(t.TempDir(), "dr.qcow2")
	nbdserve.QemuImg(t, "create", "-q", "-f", "qcow2", p, "4M")
	srv := nbdserve.QemuNBD(t, p, "qcow2", "vol")
	px := newSwitchProxy(t, srv.Addr)
	tn := nbdNode(t, "nbd://"+px.addr()+"/vol", nil)
	deliverAll(t, tn.n, "vol", g.files) // all held before destage starts: no idle moment
	tn.serve(t)
	testkit.WaitFor(t, 60*time.Second, "destage", destaged(tn.n, len(g.files)))
	testkit.WaitFor(t, 10*time.Second, "idle", func() bool { return tn.n.Status().Volumes[0].State == stateIdle })
	if got := readExport(t, srv.URI); !bytes.Equal(got, g.final) {
		t.Fatalf("export: %s", testkit.FirstDiff(g.final, got))
	}
	checkSnapshots(t, tn, g)
	if n := px.accepted(); n != 1 {
		t.Errorf("%d connections for %d journal files: one per file?", n, len(g.files))
	}
}

// TestGroupMarkerNBD: a consistency group of two NBD volumes (nbdkit
// memory). Member a waits at the group snapshot marker with its connection
// open while b's files arrive; the member that arrives last takes both
// snapshots, each over its own volume's connection, at the marker.
func TestGroupMarkerNBD(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 64<<10,
		randomOps(rand.New(rand.NewPCG(31, 1)), 64<<10, 40, map[int]journal.Record{10: gm}))
	gb := writeJournal(t, filepath.Join(root, "jb"), "b", 64<<10,
		randomOps(rand.New(rand.NewPCG(32, 1)), 64<<10, 40, map[int]journal.Record{25: gm}))
	sa, sb := nbdserve.Nbdkit(t, "memory", "size=64K"), nbdserve.Nbdkit(t, "memory", "size=64K")
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "a", Path: sa.URI}, {Name: "b", Path: sb.URI}},
		Groups:  map[string][]string{"g": {"a", "b"}}, Logger: discardLog(),
		RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{cfg: cfg, n: n}
	tn.serve(t)
	deliverAll(t, n, "a", ga.files)
	testkit.WaitFor(t, 10*time.Second, "a waiting at the group marker", func() bool {
		return strings.HasPrefix(n.Status().Volumes[0].State, stateGroup)
	})
	if got := readExport(t, sa.URI); !bytes.Equal(got, ga.snaps["gsnap"]) {
		t.Fatalf("volume a while waiting: %s", testkit.FirstDiff(ga.snaps["gsnap"], got))
	}
	deliverAll(t, n, "b", gb.files)
	testkit.WaitFor(t, 20*time.Second, "both destaged", func() bool {
		st := n.Status()
		return st.Volumes[0].DestagedFile == uint64(len(ga.files)) && st.Volumes[1].DestagedFile == uint64(len(gb.files))
	})
	for _, c := range []struct {
		vol, uri string
		g        generated
	}{{"a", sa.URI, ga}, {"b", sb.URI, gb}} {
		if got := testkit.ReadFile(t, SnapshotPath(cfg.SnapshotDir, c.vol, "gsnap")); !bytes.Equal(got, c.g.snaps["gsnap"]) {
			t.Errorf("group snapshot of %s: %s", c.vol, testkit.FirstDiff(c.g.snaps["gsnap"], got))
		}
		if got := readExport(t, c.uri); !bytes.Equal(got, c.g.final) {
			t.Errorf("export %s: %s", c.vol, testkit.FirstDiff(c.g.final, got))
		}
	}
}
