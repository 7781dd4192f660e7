package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrExited is wrapped when a daemon ended while the bench still needed it.
var ErrExited = errors.New("daemon exited")

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100
// on every Linux architecture Go supports).
const clockTicks = 100

// maxTicks bounds utime and stime (about 300 years of CPU), so their sum
// converts to a Duration without overflow.
const maxTicks = 1 << 40

// daemon is one running aimwan process started by the bench, with its
// output appended to a log file.
type daemon struct {
	name string
	bin  string
	args []string
	log  string // path of its log file

	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error         // its exit status, set before done closes
}

// startDaemon starts `bin args...` with stdout and stderr appended to
// logDir/<name>.log.
func startDaemon(bin, logDir, name string, args ...string) (*daemon, error) {
	d := &daemon{name: name, bin: bin, args: args, log: filepath.Join(logDir, name+".log")}
	if err := d.start(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *daemon) start() error {
	f, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s: aimwan %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(d.args, " "))
	cmd := exec.Command(d.bin, d.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	done := make(chan struct{})
	d.cmd, d.done = cmd, done
	go func() {
		d.err = cmd.Wait()
		close(done)
	}()
	return nil
}

// exited reports whether the process has ended.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to wait for the exit, then SIGKILL. It
// returns the process's CPU time (utime+stime) read just before the signal.
func (d *daemon) stop(wait time.Duration) time.Duration {
	if d.cmd == nil || d.exited() {
		return 0
	}
	cpu, _ := d.cpu()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return cpu
	case <-time.After(wait):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return cpu
}

// restart stops the process and starts it again with args.
func (d *daemon) restart(args []string) (time.Duration, error) {
	cpu := d.stop(15 * time.Second)
	d.args = args
	return cpu, d.start()
}

// cpu is the process's user+system CPU time so far, from /proc/PID/stat.
func (d *daemon) cpu() (time.Duration, error) {
	if d.cmd == nil || d.exited() {
		return 0, fmt.Errorf("%s: %w", d.name, ErrExited)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s cpu: %w", d.name, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the contents of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name in %q", truncate(b, 64))
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

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// waitTCP waits until addr accepts TCP connections, failing early when d
// exits.
func waitTCP(ctx context.Context, addr string, d *daemon, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if d != nil && d.exited() {
			return fmt.Errorf("%s (log %s) before listening on %s: %w", d.name, d.log, addr, ErrExited)
		}
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s on %s: %w", d.name, addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePorts returns n loopback addresses whose port was free for both TCP
// and UDP just now (the link simulator serves both on one port).
func freePorts(n int) ([]string, error) {
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
	return out, nil
}
