package aimdst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aimwan/aimwan/journal"
)

// maxHookOutput bounds the output of a hook kept for the log.
const maxHookOutput = 16 << 10

// hookRun is what a custom marker hands to its hook.
type hookRun struct {
	Volume string
	Rec    journal.Record
}

// runHook runs cmd with /bin/sh -c for a custom marker, with the marker in the
// environment: AIMWAN_VOLUME, AIMWAN_LABEL, AIMWAN_SEQ, AIMWAN_GROUP and
// AIMWAN_GROUP_SEQ (group markers), and AIMWAN_ARG_<KEY> per argument (KEY
// as given and upper-cased, '-' as '_'). It waits at most timeout, then kills the hook's process
// group. The exit status and output are logged; the error is returned for
// the caller to count, never to stop destage.
func runHook(ctx context.Context, log *slog.Logger, cmdline string, timeout time.Duration, h hookRun) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Env = append(os.Environ(), hookEnv(h)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out := &limitedBuffer{max: maxHookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	attrs := []any{"volume", h.Volume, "label", h.Rec.Label, "seq", h.Rec.Seq, "cmd", cmdline,
		"elapsed", time.Since(start).Round(time.Millisecond), "output", out.String()}
	if err != nil {
		log.Warn("hook failed; destage goes on", append(attrs, "err", err)...)
		return fmt.Errorf("hook %q for marker %s (seq %d) of %s: %w", cmdline, h.Rec.Label, h.Rec.Seq, h.Volume, err)
	}
	log.Info("hook ran", append(attrs, "exit", 0)...)
	return nil
}

// hookEnv is the marker's part of a hook's environment.
func hookEnv(h hookRun) []string {
	env := []string{
		"AIMWAN_VOLUME=" + h.Volume,
		"AIMWAN_LABEL=" + h.Rec.Label,
		"AIMWAN_SEQ=" + strconv.FormatUint(h.Rec.Seq, 10),
		"AIMWAN_TIME=" + h.Rec.Time.UTC().Format(time.RFC3339Nano),
	}
	if h.Rec.Group != "" {
		env = append(env, "AIMWAN_GROUP="+h.Rec.Group, "AIMWAN_GROUP_SEQ="+strconv.FormatUint(h.Rec.GroupSeq, 10))
	}
	for _, a := range h.Rec.Args {
		// Keys are journal.ValidName ([A-Za-z0-9_-]); '-' is not valid in a
		// shell variable name.
		// Both the key as given and its upper-case form are set.
		key := strings.ReplaceAll(a.Key, "-", "_")
		env = append(env, "AIMWAN_ARG_"+key+"="+a.Value)
		if up := strings.ToUpper(key); up != key {
			env = append(env, "AIMWAN_ARG_"+up+"="+a.Value)
		}
	}
	return env
}

// limitedBuffer keeps the first max bytes written to it and counts the rest.
type limitedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	room := b.max - b.buf.Len()
	if room < len(p) {
		b.dropped += len(p) - max(room, 0)
		p = p[:max(room, 0)]
	}
	b.buf.Write(p)
	return n, nil
}

func (b *limitedBuffer) String() string {
	s := strings.TrimRight(b.buf.String(), "\n")
	if b.dropped > 0 {
		s += fmt.Sprintf("\n... (%d more bytes)", b.dropped)
	}
	return s
}

// errHookNotFound is logged when a custom marker has no hook configured.
var errHookNotFound = errors.New("no hook configured for this label")
