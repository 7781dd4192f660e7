package procs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a daemon: `listen ADDR` listens
// until SIGTERM and then writes "stopped NANOS"; `exit` ends at once.
const helperEnv = "AIMWAN_PROCS_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helper(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

func helper(args []string) {
	if len(args) == 2 && args[0] == "listen" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		defer ln.Close()
		<-term
		fmt.Println("stopped", time.Now().UnixNano())
	}
}

// TestChainOrder: a chain starts its daemons in order, each once listening,
// and stops them in reverse order; Crashed names one that ended by itself.
func TestChainOrder(t *testing.T) {
	t.Setenv(helperEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(self, filepath.Join(t.TempDir(), "logs"))
	if err != nil {
		t.Fatal(err)
	}
	dst := c.Add("dst", []string{"listen", addrs[0]}, addrs[0])
	src := c.Add("src", []string{"listen", addrs[1]}, addrs[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(c.Crashed()) != 0 || dst.Runs() != 1 || src.Runs() != 1 {
		t.Fatalf("after start: crashed %v, runs %d %d", c.Crashed(), dst.Runs(), src.Runs())
	}
	c.Stop()
	if !dst.Exited() || !src.Exited() || len(c.Crashed()) != 0 {
		t.Fatalf("after stop: exited %v %v, crashed %v", dst.Exited(), src.Exited(), c.Crashed())
	}
	if stopped(t, src) > stopped(t, dst) {
		t.Error("src stopped after dst: the chain must stop the source side first")
	}
	if tails := c.Tails(5); !strings.Contains(tails, "--- dst log tail") || !strings.Contains(tails, "run 1: aimwan listen") {
		t.Errorf("tails:\n%s", tails)
	}
	dst.SetArgs([]string{"exit"})
	dst.Ready = nil
	if err := dst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !dst.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if cr := c.Crashed(); len(cr) != 1 || cr[0] != dst {
		t.Errorf("crashed %v, want dst", cr)
	}
}

// stopped reads the time the helper wrote when it got SIGTERM.
func stopped(t *testing.T, p *Proc) int64 {
	t.Helper()
	for _, l := range strings.Split(p.Output(), "\n") {
		if v, ok := strings.CutPrefix(l, "stopped "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s did not log its stop:\n%s", p.Name, p.Output())
	return 0
}

// TestProcLifecycle: a daemon (here sleep) is started, frozen, thawed,
// killed (not a crash) and restarted; one that exits on its own is a crash.
func TestProcLifecycle(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	ctx := context.Background()
	p := NewProc(sleep, "sleeper", filepath.Join(dir, "s.log"), []string{"60"})
	if p.Crashed() {
		t.Fatal("not started, yet crashed")
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Crashed() {
		t.Fatal("just started, already gone")
	}
	if _, err := p.CPU(); err != nil {
		t.Errorf("cpu of a running process: %v", err)
	}
	p.Freeze()
	p.Thaw()
	p.Kill()
	if !p.Exited() || p.Crashed() {
		t.Fatalf("after kill: exited %v crashed %v", p.Exited(), p.Crashed())
	}
	p.SetArgs([]string{"0"})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !p.Crashed() {
		t.Error("a daemon that exited by itself is not reported as crashed")
	}
	if strings.Count(p.Output(), "=== ") != 2 {
		t.Errorf("log does not record two runs:\n%s", p.Output())
	}
	q := NewProc(sleep, "quitter", filepath.Join(dir, "q.log"), []string{"0"}, "127.0.0.1:1")
	if err := q.Start(ctx); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exited before listening") {
		t.Errorf("start of a daemon that never listens: %v", err)
	}
	r := NewProc(sleep, "silent", filepath.Join(dir, "r.log"), []string{"60"}, "127.0.0.1:1")
	r.ReadyTimeout = 100 * time.Millisecond
	if err := r.Start(ctx); err == nil || !strings.Contains(err.Error(), "not listening") {
		t.Errorf("start of a daemon that stays up but never listens: %v", err)
	}
	r.Stop()
}

// TestFreePorts: the ports of one call, and of calls one after the other
// (the kernel may hand a closed port out again at once), all differ.
func TestFreePorts(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := FreePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p {
			if seen[a] {
				t.Fatalf("port %s given twice", a)
			}
			seen[a] = true
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		err  bool
	}{
		{"plain", "1234 (aimwan) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0", 3 * time.Second, false},
		{"name with spaces and parens", "7 (a) b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0", 30 * time.Millisecond, false},
		{"no name", "7 a R 1", 0, true},
		{"short", "7 (a) R 1 2 3", 0, true},
		{"not a number", "7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 2 0 0", 0, true},
		{"overflow", "7 (a) R 1 7 7 0 -1 0 0 0 0 0 18446744073709551615 18446744073709551615 0 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSelfCPU(t *testing.T) {
	if _, err := SelfCPU(); err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
}

// FuzzParseStatCPU: any /proc/PID/stat content gives a CPU time or an
// error, never a panic or a negative time.
func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("1234 (aimwan) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0"))
	f.Add([]byte("7 (a) b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseStatCPU(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v from %q", d, b)
		}
	})
}
