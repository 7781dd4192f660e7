package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrExited is wrapped when a daemon exited while the harness still needed it.
var ErrExited = errors.New("daemon exited")

// Defaults of a Proc's waits.
const (
	DefaultReadyTimeout = 30 * time.Second // Start's wait for the ready addresses
	DefaultStopWait     = 10 * time.Second // Stop's SIGTERM grace before SIGKILL
)

// Proc is one aimwan process (usually a daemon) run by a harness. Its output,
// every run, is appended to its log file. Set the exported fields before the
// first Start.
type Proc struct {
	Name string // in logs and errors: "src", "proxy-src", "link"...
	Bin  string // the aimwan binary
	Log  string // file the output of every run is appended to
	// Ready are TCP addresses that accept connections once the process is up.
	Ready []string
	// ReadyTimeout bounds Start's wait for Ready (0 = DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// StopWait is Stop's grace between SIGTERM and SIGKILL (0 = DefaultStopWait).
	StopWait time.Duration

	mu     sync.Mutex
	args   []string
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current run exited
	frozen bool
	runs   int
	killed bool // the current run was ended by the harness
}

// NewProc returns a proc of bin with args, logging to log, that is ready once
// every ready address accepts TCP connections. Nothing runs yet.
func NewProc(bin, name, log string, args []string, ready ...string) *Proc {
	return &Proc{Name: name, Bin: bin, Log: log, Ready: ready, args: append([]string(nil), args...)}
}

// Start starts a new run with the current arguments and waits until every
// ready address accepts connections (ErrExited when the run ends first).
func (p *Proc) Start(ctx context.Context) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	defer f.Close()
	p.mu.Lock()
	args := append([]string(nil), p.args...)
	p.runs++
	fmt.Fprintf(f, "=== %s run %d: aimwan %s\n", time.Now().UTC().Format(time.RFC3339Nano), p.runs, strings.Join(args, " "))
	cmd := exec.Command(p.Bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr() // the daemon dies with the harness
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.frozen, p.killed = cmd, done, false, false
	p.mu.Unlock()
	go func() { cmd.Wait(); close(done) }() // ends with the process
	timeout := p.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	for _, addr := range p.Ready {
		if err := WaitTCP(ctx, addr, p, timeout); err != nil {
			return err
		}
	}
	return nil
}

// Restart ends the current run, if any (Stop), and starts a new one.
func (p *Proc) Restart(ctx context.Context) error {
	if !p.Exited() {
		p.Stop()
	}
	return p.Start(ctx)
}

// SetArgs replaces the arguments of the next start.
func (p *Proc) SetArgs(args []string) {
	p.mu.Lock()
	p.args = append([]string(nil), args...)
	p.mu.Unlock()
}

// Args returns the arguments of the next (or current) run.
func (p *Proc) Args() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.args...)
}

// Runs counts the starts so far.
func (p *Proc) Runs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs
}

// Exited reports whether the current run has ended (true before any start).
func (p *Proc) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Crashed reports whether the current run ended without the harness asking.
func (p *Proc) Crashed() bool {
	p.mu.Lock()
	killed, started := p.killed, p.done != nil
	p.mu.Unlock()
	return started && !killed && p.Exited()
}

// signal sends sig and waits up to wait for the exit; then SIGKILL.
func (p *Proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done, frozen := p.cmd, p.done, p.frozen
	p.killed = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if frozen && sig != syscall.SIGKILL {
		cmd.Process.Signal(syscall.SIGCONT)
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

// Kill ends the current run with SIGKILL (a crash) and waits for it.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, DefaultStopWait) }

// Stop ends the current run with SIGTERM, or SIGKILL after StopWait, and
// returns the CPU time the run used (read just before the signal; 0 when the
// run had already ended or the figure is not available).
func (p *Proc) Stop() time.Duration {
	if p.Exited() {
		return 0
	}
	cpu, _ := p.CPU()
	wait := p.StopWait
	if wait <= 0 {
		wait = DefaultStopWait
	}
	p.signal(syscall.SIGTERM, wait)
	return cpu
}

// Freeze stops the process (SIGSTOP): it holds its sockets but answers
// nothing, like a host behind a dead link.
func (p *Proc) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.frozen {
		p.cmd.Process.Signal(syscall.SIGSTOP)
		p.frozen = true
	}
}

// Thaw resumes a frozen process (SIGCONT).
func (p *Proc) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.frozen {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.frozen = false
	}
}

// CPU is the current run's user+system CPU time so far, from /proc/PID/stat.
func (p *Proc) CPU() (time.Duration, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || p.Exited() {
		return 0, fmt.Errorf("%s: %w", p.Name, ErrExited)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s cpu: %w", p.Name, err)
	}
	return parseStatCPU(b)
}

// Output returns everything the process wrote so far, every run.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return Tail(string(b), n)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitTCP waits until addr accepts TCP connections, at most timeout; it
// fails at once (ErrExited) when p, if not nil, exits first.
func WaitTCP(ctx context.Context, addr string, p *Proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before listening on %s (log %s): %w\n%s", p.Name, addr, p.Log, ErrExited, p.Tail(20))
		}
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			if p == nil {
				return fmt.Errorf("nothing listening on %s after %v: %w", addr, timeout, ctx.Err())
			}
			return fmt.Errorf("%s not listening on %s after %v (log %s): %w\n%s", p.Name, addr, timeout, p.Log, ctx.Err(), p.Tail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SelfCPU is this process's user+system CPU time so far.
func SelfCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100
// on every Linux architecture Go supports).
const clockTicks = 100

// maxTicks bounds utime and stime (about 300 years of CPU), so their sum
// converts to a Duration without overflow.
const maxTicks = 1 << 40

// parseStatCPU reads utime and stime (fields 14 and 15) from the contents of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name in %q", b[:min(len(b), 64)])
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state (3), ppid (4) ... utime (14), stime (15).
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: utime/stime: %w", err)
	}
	if ut > maxTicks || st > maxTicks {
		return 0, fmt.Errorf("proc stat: utime/stime %d/%d ticks out of range", ut, st)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
