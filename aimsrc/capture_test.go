package aimsrc

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
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
			if img := readAll(t, filepath.Join(dir, "a.img")); !bytes.Equal(img, src) {
				t.Fatalf("volume image differs from the source: %s", firstDiff(img, src))
			}
			waitFor(t, "all journal files shipped", 20*time.Second, func() bool {
				st := n.Status().Volumes[0]
				return st.SrcDataBytes == 0 && st.FilesWaiting == 0 && st.Writes > 0
			})
			r := dst.replay(t, "vol-a", size)
			if !bytes.Equal(r.img, src) {
				t.Fatalf("replayed journals differ from the source: %s", firstDiff(r.img, src))
			}
			if len(dst.names("vol-a")) < 2 {
				t.Errorf("want several journal files (1 MiB file size), got %d", len(dst.names("vol-a")))
			}
		})
	}
}
