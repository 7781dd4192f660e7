package testkit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// raceReport starts every report of a race-enabled binary.
const raceReport = "WARNING: DATA RACE"

// Proc is a process of the chain (a procs.Proc) owned by a test.
type Proc struct {
	*procs.Proc
	t testing.TB
}

// StartProc starts `bin args...` with its output appended to <name>.log in
// the test's temp folder. The process is stopped when the test ends, its log
// tail is printed when the test failed, and the test fails when the log
// reports a data race (a binary built with -race).
func StartProc(t testing.TB, bin, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Proc: procs.NewProc(bin, name, filepath.Join(t.TempDir(), name+".log"), args), t: t}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if strings.Contains(p.Output(), raceReport) {
			t.Errorf("%s: the race detector reported a data race (see %s)", p.Name, p.Log)
		}
		if t.Failed() {
			t.Logf("--- log of %s (%s), last lines:\n%s", p.Name, p.Log, p.Tail(40))
		}
	})
	return p
}

// Restart starts the process again with the same arguments (a running one
// is stopped first), failing the test when it cannot start.
func (p *Proc) Restart() {
	p.t.Helper()
	if err := p.Proc.Restart(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

// WaitPort waits until addr accepts TCP connections, at most timeout; it
// fails the test then, or at once when p (optional) exits first.
func WaitPort(t testing.TB, timeout time.Duration, addr string, p *Proc) {
	t.Helper()
	var pp *procs.Proc
	if p != nil {
		pp = p.Proc
	}
	if err := procs.WaitTCP(context.Background(), addr, pp, timeout); err != nil {
		t.Fatal(err)
	}
}

// FreeAddr returns a loopback address whose port was free for both TCP and
// UDP just now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	a, err := procs.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return a[0]
}
