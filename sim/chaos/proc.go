package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one daemon of the chain, run from the aimwan binary. Its output
// (every run) is appended to its log file.
type proc struct {
	name  string   // src, proxy-src, link, proxy-dst, dst
	bin   string   // the aimwan binary
	log   string   // log file path
	ready []string // TCP addresses that accept connections once it is up

	mu     sync.Mutex
	args   []string
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current run exited
	frozen bool
	runs   int
	killed bool // the current run was ended by the harness
}

// startTimeout bounds how long a daemon may take to listen after a start.
const startTimeout = 30 * time.Second

// start starts a new run with the current arguments and waits until every
// ready address accepts connections.
func (p *proc) start(ctx context.Context) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	defer f.Close()
	p.mu.Lock()
	args := append([]string(nil), p.args...)
	p.runs++
	fmt.Fprintf(f, "=== %s run %d: aimwan %s\n", time.Now().UTC().Format(time.RFC3339Nano), p.runs, strings.Join(args, " "))
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The daemon dies with the harness even if the harness is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.frozen, p.killed = cmd, done, false, false
	p.mu.Unlock()
	go func() { cmd.Wait(); close(done) }() // ends with the process
	return p.waitReady(ctx)
}

// waitReady polls the ready addresses until they accept connections; it
// fails at once when the process exits.
func (p *proc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for _, addr := range p.ready {
		for {
			if p.exited() {
				return fmt.Errorf("%s exited before listening on %s:\n%s", p.name, addr, p.tail(20))
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not listening on %s after %v:\n%s", p.name, addr, startTimeout, p.tail(20))
			}
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// exited reports whether the current run has ended (true before any start).
func (p *proc) exited() bool {
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

// crashed reports whether the current run ended without the harness asking.
func (p *proc) crashed() bool {
	p.mu.Lock()
	killed := p.killed
	p.mu.Unlock()
	return !killed && p.exited()
}

// signal sends sig and waits up to wait for the exit; then SIGKILL.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
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

// kill ends the current run with SIGKILL (a crash) and waits for it.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// stop ends the current run with SIGTERM, or SIGKILL after 10 s.
func (p *proc) stop() { p.signal(syscall.SIGTERM, 10*time.Second) }

// freeze stops the process (SIGSTOP): it holds its sockets but answers
// nothing, like a host behind a dead link.
func (p *proc) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.frozen {
		p.cmd.Process.Signal(syscall.SIGSTOP)
		p.frozen = true
	}
}

// thaw resumes a frozen process (SIGCONT).
func (p *proc) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.frozen {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.frozen = false
	}
}

// setArgs replaces the arguments used by the next start.
func (p *proc) setArgs(args []string) {
	p.mu.Lock()
	p.args = append([]string(nil), args...)
	p.mu.Unlock()
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// freeTCP returns a loopback TCP address that was free just now.
func freeTCP() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freeUDP returns a loopback UDP address that was free just now.
func freeUDP() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free udp port: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}
