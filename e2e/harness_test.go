package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raceReport starts every report of a race-enabled binary.
const raceReport = "WARNING: DATA RACE"

// aimwanBin is the binary TestMain builds.
var aimwanBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aimwan-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	aimwanBin = filepath.Join(dir, "aimwan")
	args := []string{"build", "-o", aimwanBin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/aimwan/aimwan/cmd/aimwan")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building aimwan: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Proc is a running aimwan process (usually a daemon) owned by a test.
type Proc struct {
	t    *testing.T
	Name string   // for logs: "dst", "src", "proxy-a"...
	Args []string // aimwan's arguments
	Log  string   // path of the combined stdout+stderr of every run

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run exited
	runs int
}

// StartProc starts `aimwan args...` with its output appended to a log file in
// the test's temp folder; the process is stopped when the test ends, and its
// log tail is printed when the test failed.
func StartProc(t *testing.T, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, Name: name, Args: args, Log: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.Stop()
		if strings.Contains(p.Output(), raceReport) {
			t.Errorf("%s: the race detector reported a data race (see %s)", p.Name, p.Log)
		}
		if t.Failed() {
			t.Logf("--- log of %s (%s), last lines:\n%s", p.Name, p.Log, tail(p.Output(), 40))
		}
	})
	return p
}

func (p *Proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== run %d: aimwan %s\n", p.runs+1, strings.Join(p.Args, " "))
	cmd := exec.Command(aimwanBin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.runs++
	p.mu.Unlock()
}

// Exited reports whether the current run has ended.
func (p *Proc) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits up to wait for the exit; then SIGKILL.
func (p *Proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return
	case <-time.After(wait):
	}
	cmd.Process.Kill()
	<-done
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// Stop ends the process with SIGTERM, or SIGKILL after 10 s.
func (p *Proc) Stop() { p.signal(syscall.SIGTERM, 10*time.Second) }

// Restart starts the process again with the same arguments (after Kill or
// Stop).
func (p *Proc) Restart() {
	p.t.Helper()
	if !p.Exited() {
		p.Stop()
	}
	p.start()
}

// Output returns everything the process wrote so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreeAddr returns a loopback address with a port that was free just now.
func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitPort waits until addr accepts TCP connections; it fails at once when
// p (optional) exits first.
func WaitPort(t *testing.T, addr string, p *Proc) {
	t.Helper()
	Eventually(t, 20*time.Second, "port "+addr, func() (bool, error) {
		if p != nil && p.Exited() {
			return false, fmt.Errorf("%s exited before listening on %s:\n%s", p.Name, addr, tail(p.Output(), 20))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
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
// its combined output; a non-zero exit is an *exec.ExitError.
func Aimwan(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, aimwanBin, args...).CombinedOutput()
	return string(out), err
}

// MustAimwan is Aimwan that fails the test on a non-zero exit.
func MustAimwan(t *testing.T, args ...string) string {
	t.Helper()
	out, err := Aimwan(t, args...)
	if err != nil {
		t.Fatalf("aimwan %s: %v\n%s", strings.Join(args, " "), err, out)
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

// readFile reads a file, failing the test on error.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
