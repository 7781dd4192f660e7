package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// aimwanBin is the binary TestMain builds.
var aimwanBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aimwan-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if bin := os.Getenv(netnsBinEnv); bin != "" { // a test re-run in a network namespace: built already
		aimwanBin = bin
	} else {
		aimwanBin = filepath.Join(dir, "aimwan")
		if err := procs.Build(context.Background(), aimwanBin, raceBuild); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	if err := makeKeys(dir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Proc is a running aimwan process (usually a daemon) owned by a test.
type Proc = testkit.Proc

// StartProc starts `aimwan args...` (testkit.StartProc): its log is in the
// test's temp folder, it is stopped when the test ends, and its log tail is
// printed when the test failed.
func StartProc(t *testing.T, name string, args ...string) *Proc {
	t.Helper()
	return testkit.StartProc(t, aimwanBin, name, args...)
}

// WaitPort waits until addr accepts TCP connections; it fails at once when
// p (optional) exits first.
func WaitPort(t *testing.T, addr string, p *Proc) {
	t.Helper()
	testkit.WaitPort(t, 20*time.Second, addr, p)
}

// Eventually polls cond every 20 ms until it returns true, fails the test
// when it returns an error or when timeout passes.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Aimwan runs a one-shot aimwan subcommand (at most a minute) and returns
// its combined output; a non-zero exit wraps an *exec.ExitError.
func Aimwan(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return procs.Run(context.Background(), aimwanBin, time.Minute, args...)
}

// MustAimwan is Aimwan that fails the test on a non-zero exit.
func MustAimwan(t *testing.T, args ...string) string {
	t.Helper()
	out, err := Aimwan(t, args...)
	if err != nil {
		t.Fatal(err) // names the command and holds its output
	}
	return out
}

// ExitCode is the exit code of an Aimwan error (0 for nil, -1 if not an exit).
func ExitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// NeedBins skips the test when one of the external tools is not installed.
func NeedBins(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (CI installs qemu-utils and libnbd-bin)", b)
		}
	}
}

// Run runs an external command (bounded to a minute) and fails the test on
// error.
func Run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// GenImage writes a raw image of size bytes at path: pseudo-random data
// blocks, zero runs and holes, the same for the same seed.
func GenImage(t *testing.T, path string, size int64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	const block = 64 << 10
	buf := make([]byte, block)
	for off := int64(0); off < size; off += block {
		switch rng.IntN(4) {
		case 0: // hole
			continue
		case 1: // explicit zeros
			clear(buf)
		default:
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
		}
		n := min(int64(block), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
}

// SameFile fails the test unless `aimwan verify a b` says identical.
func SameFile(t *testing.T, a, b string) {
	t.Helper()
	out, err := Aimwan(t, "verify", a, b)
	if err != nil {
		t.Fatalf("aimwan verify %s %s: %v\n%s", a, b, err, out)
	}
}

// Scrape fetches the Prometheus text exposition at http://addr/metrics and
// returns every sample as "name{labels}" (as exposed) -> value.
func Scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// FileExists reports whether path exists.
func FileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
