package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/transport/push"
)

// runSrcPause is aimwan src pause|resume [--volume V]: stop or restart
// pushing one volume, or every volume (the whole destination).
func runSrcPause(ctx context.Context, verb string, args []string, out io.Writer) error {
	cmd := "src " + verb
	fs := newFlagSet(cmd, "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) [--volume NAME]")
	ct := srcControl(fs)
	volume := fs.String("volume", "", "the volume `NAME` to "+verb+" (default: every volume, the whole destination)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	c, err := srcClient(cmd, ct)
	if err != nil {
		return err
	}
	call := c.Pause
	if verb == "resume" {
		call = c.Resume
	}
	st, err := call(ctx, *volume)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	what := "every volume (the whole destination)"
	if *volume != "" {
		what = "volume " + *volume
	}
	fmt.Fprintf(out, "%sd pushing %s\n", verb, what)
	fmt.Fprintln(out, pauseSummary(st))
	return nil
}

// pauseSummary says what is paused now.
func pauseSummary(st aimsrc.PauseState) string {
	switch {
	case st.All:
		return "paused: every volume (the whole destination)"
	case len(st.Volumes) > 0:
		return "paused: " + strings.Join(st.Volumes, ", ")
	}
	return "paused: nothing"
}

// srcLinkLine is src status's line on the link to the next hop and what is
// paused: "link up", or "LINK DOWN since 10:02:03 (35s, 4 failures): why".
func srcLinkLine(st aimsrc.Status, now time.Time) string {
	l := st.Link
	s := "link " + l.State
	switch l.State {
	case push.LinkDown:
		s = fmt.Sprintf("LINK DOWN since %s (%s, %d failures): %s", l.Since.Local().Format("15:04:05"),
			now.Sub(l.Since).Round(time.Second), l.Failures, l.Error)
	case push.LinkUp:
		if l.Error != "" {
			s += fmt.Sprintf(" (last failure %s: %s)", l.ErrorTime.Local().Format("15:04:05"), oneLine(l.Error, 120))
		}
	}
	return s + "  " + pauseSummary(st.Paused)
}
