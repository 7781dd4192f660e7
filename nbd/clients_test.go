package nbd

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needBinary skips the test when an external client is not installed.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt: qemu-utils / libnbd-bin); CI installs it", name)
	}
	return p
}

// runTool runs an external client with a deadline and returns its output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, needBinary(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// randomImage writes a file of n bytes: random data with some zero runs.
func randomImage(t *testing.T, path string, n int, seed uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := 0; i+(64<<10) <= n; i += 256 << 10 { // zero runs: exercise WRITE_ZEROES
		clear(b[i : i+64<<10])
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

type clientEnv struct {
	dir  string
	exp  *fileExport
	addr string
	uri  string
}

func newClientEnv(t *testing.T, size int64) *clientEnv {
	dir := t.TempDir()
	exp := newFileExport(t, dir, size)
	addr := startServer(t, &Server{Exports: ExportMap{"vol1": exp}})
	t.Cleanup(func() { exp.checkInRange(t) })
	return &clientEnv{dir: dir, exp: exp, addr: addr, uri: "nbd://" + addr + "/vol1"}
}

func (e *clientEnv) image(t *testing.T) []byte {
	b, err := os.ReadFile(filepath.Join(e.dir, "vol.img"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestQemuImgConvert(t *testing.T) {
	needBinary(t, "qemu-img")
	const size = 4 << 20
	env := newClientEnv(t, size)
	src := filepath.Join(t.TempDir(), "src.img")
	want := randomImage(t, src, size, 1)
	runTool(t, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, env.uri)
	if got := env.image(t); !bytes.Equal(got, want) {
		t.Fatalf("image differs after qemu-img convert")
	}
	out := filepath.Join(t.TempDir(), "out.img")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", env.uri, out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("image read back by qemu-img differs")
	}
}

func TestQemuIO(t *testing.T) {
	needBinary(t, "qemu-io")
	const size = 4 << 20
	env := newClientEnv(t, size)
	if err := os.WriteFile(filepath.Join(env.dir, "vol.img"), bytes.Repeat([]byte{0x11}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, "qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "flush",
		"-c", "discard 1M 1M", "-c", "write -z 2M 1M", "-c", "write -f -P 0xcd 3M 4k", env.uri)
	got := env.image(t)
	if !bytes.Equal(got[:1<<20], bytes.Repeat([]byte{0xab}, 1<<20)) {
		t.Errorf("first MiB is not 0xab")
	}
	if !bytes.Equal(got[2<<20:3<<20], make([]byte, 1<<20)) {
		t.Errorf("third MiB is not zero after write -z")
	}
	if !bytes.Equal(got[3<<20:3<<20+4096], bytes.Repeat([]byte{0xcd}, 4096)) {
		t.Errorf("FUA write at 3M missing")
	}
	env.exp.mu.Lock()
	defer env.exp.mu.Unlock()
	if env.exp.flushes == 0 || env.exp.trims == 0 || env.exp.zeroes == 0 || env.exp.fuas == 0 {
		t.Errorf("flushes=%d trims=%d zeroes=%d fuas=%d, want all > 0", env.exp.flushes, env.exp.trims, env.exp.zeroes, env.exp.fuas)
	}
}

func TestNbdcopy(t *testing.T) {
	needBinary(t, "nbdcopy")
	const size = 4 << 20
	env := newClientEnv(t, size)
	src := filepath.Join(t.TempDir(), "src.img")
	want := randomImage(t, src, size, 2)
	runTool(t, "nbdcopy", src, env.uri)
	if got := env.image(t); !bytes.Equal(got, want) {
		t.Fatalf("image differs after nbdcopy")
	}
	out := filepath.Join(t.TempDir(), "out.img")
	runTool(t, "nbdcopy", env.uri, out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("image read back by nbdcopy differs")
	}
}

func TestNbdinfoList(t *testing.T) {
	needBinary(t, "nbdinfo")
	dir := t.TempDir()
	exps := ExportMap{"alpha": newFileExport(t, dir, 1<<20)}
	ro := newFileExport(t, t.TempDir(), 2<<20)
	ro.readOnly = true
	exps["beta-snap"] = ro
	addr := startServer(t, &Server{Exports: exps})
	out := runTool(t, "nbdinfo", "--list", "nbd://"+addr)
	for _, want := range []string{"alpha", "beta-snap"} {
		if !strings.Contains(out, want) {
			t.Errorf("nbdinfo --list output lacks %q:\n%s", want, out)
		}
	}
	out = runTool(t, "nbdinfo", "--json", "nbd://"+addr+"/beta-snap")
	for _, want := range []string{`"export-size": 2097152`, `"is_read_only": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("nbdinfo output lacks %q:\n%s", want, out)
		}
	}
}
