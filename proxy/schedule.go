package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aimwan/aimwan/transport"
)

// loadSchedule reads a schedule spec: an existing file (returned as path, to
// be watched for changes) or inline rules separated by ';'. "" is no
// schedule.
func loadSchedule(spec string) (*transport.Schedule, string, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, "", nil
	}
	if b, err := os.ReadFile(spec); err == nil {
		s, err := transport.ParseSchedule(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("%w: schedule file %s: %w", ErrConfig, spec, err)
		}
		return s, spec, nil
	}
	s, err := transport.ParseSchedule(spec)
	if err != nil {
		return nil, "", fmt.Errorf("%w: --schedule (not a file, read as inline rules): %w", ErrConfig, err)
	}
	return s, "", nil
}

// watchSchedule reloads the schedule file at path into th when its
// modification time changes (checked every interval) until ctx ends; a file
// with errors is reported and the schedule in force kept.
func watchSchedule(ctx context.Context, path string, interval time.Duration, th *transport.Throttle, log *slog.Logger) error {
	last := modTime(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		mt := modTime(path)
		if mt.Equal(last) {
			continue
		}
		last = mt
		b, err := os.ReadFile(path)
		if err == nil {
			var s *transport.Schedule
			if s, err = transport.ParseSchedule(string(b)); err == nil {
				th.SetSchedule(s)
				log.Info("schedule reloaded", "file", path)
				continue
			}
		}
		log.Error("schedule file not reloaded; keeping the schedule in force", "file", path, "err", err)
	}
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
