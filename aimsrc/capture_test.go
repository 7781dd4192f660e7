package aimsrc

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// needBinary skips the test when an external client is not installed.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install qemu-utils libnbd-bin): %v", name, err)
	}
	return p
}

// TestRealClients writes a generated image through the NBD export with real
// clients; the volume image must equal the source, and the journal files the
// fake destination received, replayed onto a zero image, must equal it too.
func TestRealClients(t *testing.T) {
	const size = 6 << 20
	tests := []struct {
		name string
		tool string
		args func(src, uri string) []string
	}{
		{"qemu-img convert", "qemu-img", func(src, uri string) []string {
			return []string{"convert", "-n", "-f", "raw", "-O", "raw", src, uri}
		}},
		{"nbdcopy", "nbdcopy", func(src, uri string) []string { return []string{src, uri} }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := needBinary(t, tc.tool)
			dir := t.TempDir()
			src := randomImage(t, filepath.Join(dir, "src.img"), size, uint64(i+1))
			dst := newFakeDst()
			cfg := testConfig(t, dir, VolumeConfig{Name: "vol-a", Path: filepath.Join(dir, "a.img"), Size: size})
			cfg.Push = serveFakeDst(t, dst)
			cfg.FileAge = 100 * time.Millisecond
			cfg.FileSize = 1 << 20
			n, _ := runNode(t, cfg)
			uri := "nbd://" + n.NBDAddr().String() + "/vol-a"
			if out, err := exec.Command(bin, tc.args(filepath.Join(dir, "src.img"), uri)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tc.tool, err, out)
			}
			if img := testkit.ReadFile(t, filepath.Join(dir, "a.img")); !bytes.Equal(img, src) {
				t.Fatalf("volume image differs from the source: %s", testkit.FirstDiff(src, img))
			}
			testkit.WaitFor(t, 20*time.Second, "all journal files pushed", func() bool {
				st := n.Status().Volumes[0]
				return st.SrcDataBytes == 0 && st.FilesWaiting == 0 && st.Writes > 0
			})
			r := dst.replay(t, "vol-a", size)
			if !bytes.Equal(r.img, src) {
				t.Fatalf("replayed journals differ from the source: %s", testkit.FirstDiff(src, r.img))
			}
			if len(dst.names("vol-a")) < 2 {
				t.Errorf("want several journal files (1 MiB file size), got %d", len(dst.names("vol-a")))
			}
		})
	}
}

// TestQemuIOZeroAndTrim: qemu-io writes, zeroes and discards through the
// export; zeroes and trims are journaled compactly (records without payload),
// the image reads zeros there, and the replayed journals equal the image.
func TestQemuIOZeroAndTrim(t *testing.T) {
	bin := needBinary(t, "qemu-io")
	const size = 2 << 20
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size})
	n, stop := runNode(t, cfg)
	cmds := []string{
		"write -P 0xab 0 1M",
		"write -z 64k 128k",      // WRITE_ZEROES
		"discard 512k 256k",      // TRIM
		"write -f -P 0xcd 1M 4k", // FUA
		"write -z -u 1536k 64k",  // zeroes, may unmap
		"flush",
	}
	args := []string{"-f", "raw", "nbd://" + n.NBDAddr().String() + "/v1"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	stop()
	want := make([]byte, size)
	for i := range 1 << 20 {
		want[i] = 0xab
	}
	clear(want[64<<10 : 192<<10])
	clear(want[512<<10 : 768<<10])
	for i := 1 << 20; i < 1<<20+4096; i++ {
		want[i] = 0xcd
	}
	if img := testkit.ReadFile(t, cfg.Volumes[0].Path); !bytes.Equal(img, want) {
		t.Fatalf("image: %s", testkit.FirstDiff(want, img))
	}
	rp := newReplayer(size)
	rp.replayDir(t, filepath.Join(cfg.Buffer, "v1"))
	if !bytes.Equal(rp.img, want) {
		t.Fatalf("replayed journals: %s", testkit.FirstDiff(want, rp.img))
	}
	var payload, zeroes, trims int64
	for _, r := range rp.records {
		switch r.Kind {
		case journal.KindWrite:
			payload += r.Length
		case journal.KindZero:
			zeroes++
		case journal.KindTrim:
			trims++
		}
	}
	if payload != 1<<20+4096 || zeroes == 0 || trims == 0 {
		t.Fatalf("journaled %d payload bytes, %d zero and %d trim records; want only the written bytes as payload", payload, zeroes, trims)
	}
}
