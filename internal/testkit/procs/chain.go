package procs

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Chain is the daemons of one run of the aimwan binary Bin, their logs in
// LogDir (<LogDir>/<name>.log), started in the order they were added (the
// destination side first) and stopped in the reverse order.
type Chain struct {
	Bin    string
	LogDir string
	// StopWait is the SIGTERM grace of every proc added (0 = DefaultStopWait).
	StopWait time.Duration
	procs    []*Proc
}

// New returns an empty chain, making LogDir.
func New(bin, logDir string) (*Chain, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("chain logs: %w", err)
	}
	return &Chain{Bin: bin, LogDir: logDir}, nil
}

// Add appends a daemon `aimwan args...` that is up once every ready address
// accepts TCP connections. Nothing starts yet.
func (c *Chain) Add(name string, args []string, ready ...string) *Proc {
	p := NewProc(c.Bin, name, filepath.Join(c.LogDir, name+".log"), args, ready...)
	p.StopWait = c.StopWait
	c.procs = append(c.procs, p)
	return p
}

// Procs lists the daemons in start order.
func (c *Chain) Procs() []*Proc { return append([]*Proc(nil), c.procs...) }

// Start starts every daemon in order, each once the one before it listens.
func (c *Chain) Start(ctx context.Context) error {
	for _, p := range c.procs {
		if err := p.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Stop ends every running daemon (thawed first; SIGTERM, then SIGKILL after
// its StopWait) in the reverse order, and returns the CPU time each used
// by name.
func (c *Chain) Stop() map[string]time.Duration {
	cpu := map[string]time.Duration{}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.Thaw()
		cpu[p.Name] = p.Stop()
	}
	return cpu
}

// Crashed returns the daemons whose current run ended without being asked.
func (c *Chain) Crashed() []*Proc {
	var out []*Proc
	for _, p := range c.procs {
		if p.Crashed() {
			out = append(out, p)
		}
	}
	return out
}

// Tails returns the last n lines of each daemon's log, headed by its name
// and log path, in start order.
func (c *Chain) Tails(n int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "\n--- %s log tail (%s):\n%s", p.Name, p.Log, p.Tail(n))
	}
	return b.String()
}

// Run runs a one-shot `aimwan args...` (at most timeout) and returns its
// combined output; a non-zero exit is an error that includes the output.
func Run(ctx context.Context, bin string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("aimwan %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Keygen makes a node identity in dir with `aimwan keygen` and returns its
// fingerprint (the last word keygen prints).
func Keygen(ctx context.Context, bin, dir string) (string, error) {
	out, err := Run(ctx, bin, time.Minute, "keygen", "--dir", dir)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", fmt.Errorf("aimwan keygen --dir %s printed nothing", dir)
	}
	return f[len(f)-1], nil
}

// Build builds the aimwan binary to out with the go command (with the race
// detector when race is set).
func Build(ctx context.Context, out string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "github.com/aimwan/aimwan/cmd/aimwan")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building aimwan: %w\n%s", err, b)
	}
	return nil
}

// given holds the ports FreePorts has returned in this process: the kernel
// may hand a closed port out again at once, and two addresses taken one
// after the other for one daemon (--nbd and --control) must differ.
var given struct {
	sync.Mutex
	ports map[string]bool
}

// FreePorts returns n loopback addresses whose port was free for both TCP and
// UDP just now (the link simulator serves both on one port; a QUIC listener
// needs UDP), all different, and none returned before by this process.
func FreePorts(n int) ([]string, error) {
	given.Lock()
	defer given.Unlock()
	if given.ports == nil {
		given.ports = map[string]bool{}
	}
	var out []string
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		addr := ln.Addr().String()
		if given.ports[addr] {
			held = append(held, ln) // held, so the next try gets another port
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			ln.Close()
			continue
		}
		held = append(held, ln, pc)
		out = append(out, addr)
	}
	if len(out) < n {
		return nil, fmt.Errorf("free port: found %d of %d", len(out), n)
	}
	for _, a := range out {
		given.ports[a] = true
	}
	return out, nil
}
