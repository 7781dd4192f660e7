package aimsrc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// ErrInitRunning is returned when an initialize of the volume is already
// running.
var ErrInitRunning = errors.New("initialize already running")

// InitStatus is the progress of a volume's initialize.
type InitStatus struct {
	Running    bool       `json:"running"`
	DoneBytes  int64      `json:"done_bytes"`  // volume bytes read so far
	TotalBytes int64      `json:"total_bytes"` // volume size
	Journaled  int64      `json:"journaled_bytes"`
	Percent    float64    `json:"percent"`
	Started    *time.Time `json:"started,omitempty"`
	Finished   *time.Time `json:"finished,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// initJob tracks a volume's initialize.
type initJob struct {
	mu sync.Mutex
	st InitStatus
}

func (j *initJob) status() InitStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.st
	if st.TotalBytes > 0 {
		st.Percent = float64(st.DoneBytes) * 100 / float64(st.TotalBytes)
	}
	return st
}

func (j *initJob) update(fn func(*InitStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.st)
}

// initCheckpointEvery is how often a running initialize records how far it
// got, so a restarted node resumes it there.
const initCheckpointEvery = time.Second

// requestInit starts an initialize of the volume (run by serveInit).
func (v *volume) requestInit() (InitStatus, error) {
	v.initJob.mu.Lock()
	if v.initJob.st.Running {
		v.initJob.mu.Unlock()
		return v.initJob.status(), fmt.Errorf("volume %s: %w", v.name, ErrInitRunning)
	}
	if err := v.checkpointInit(0); err != nil {
		v.initJob.mu.Unlock()
		return InitStatus{}, err
	}
	v.startInitLocked(0)
	v.initJob.mu.Unlock()
	return v.initJob.status(), nil
}

// startInitLocked marks an initialize from offset from as running and hands
// it to serveInit. Called with initJob.mu held.
func (v *volume) startInitLocked(from int64) {
	now := v.now()
	v.initJob.st = InitStatus{Running: true, TotalBytes: v.size, DoneBytes: from, Started: &now}
	v.initReq <- from // buffered and drained before Running can be set again
}

// resumeInit restarts an initialize that a stopped or crashed node left
// unfinished (its checkpoint file exists).
func (v *volume) resumeInit() error {
	b, err := os.ReadFile(v.initPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("volume %s: read initialize checkpoint: %w", v.name, err)
	}
	from, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || from < 0 || from > v.size {
		return fmt.Errorf("volume %s: bad initialize checkpoint %s: %q", v.name, v.initPath, b)
	}
	v.log.Info("resuming an unfinished initialize", "from", from)
	v.initJob.mu.Lock()
	v.startInitLocked(from)
	v.initJob.mu.Unlock()
	return nil
}

// checkpointInit durably records that everything before off is journaled:
// the journal is synced first.
func (v *volume) checkpointInit(off int64) error {
	if err := v.syncJournal(); err != nil {
		return fmt.Errorf("volume %s: initialize checkpoint: %w", v.name, err)
	}
	if err := durable.WriteFile(v.initPath, []byte(strconv.FormatInt(off, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("volume %s: initialize checkpoint: %w", v.name, err)
	}
	return nil
}

// serveInit runs requested initializes until ctx ends. One cut short by
// the end of ctx is resumed by the next start of the node.
func (v *volume) serveInit(ctx context.Context) error {
	for {
		var from int64
		select {
		case <-ctx.Done():
			return nil
		case from = <-v.initReq:
		}
		err := v.runInit(ctx, from)
		if ctx.Err() != nil {
			return nil // the checkpoint stays: the next start resumes
		}
		if err == nil {
			if rerr := os.Remove(v.initPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				v.log.Warn("initialize done but its checkpoint could not be removed", "err", rerr)
			}
		}
		now := v.now()
		v.initJob.update(func(s *InitStatus) {
			s.Running, s.Finished = false, &now
			if err != nil {
				s.Error = err.Error()
			}
		})
		if err != nil {
			v.log.Error("initialize failed", "err", err)
		}
	}
}

// runInit journals the volume from offset from to its end, block by block,
// skipping all-zero blocks. Each block is read and journaled under the
// volume lock, so live writes and markers interleave in order. It waits while
// the source buffer is above its low-water mark, and checkpoints its
// progress every second and when ctx ends.
func (v *volume) runInit(ctx context.Context, from int64) error {
	v.log.Info("initialize started", "size", v.size, "from", from)
	buf := make([]byte, DefaultInitBlock)
	last := time.Now()
	off := from
	for off < v.size {
		if err := v.waitRoom(ctx); err != nil {
			return errors.Join(err, v.checkpointInit(off))
		}
		if time.Since(last) >= initCheckpointEvery {
			if err := v.checkpointInit(off); err != nil {
				return err
			}
			last = time.Now()
		}
		b := buf[:min(int64(len(buf)), v.size-off)]
		journaled, err := v.initBlock(off, b)
		if err != nil {
			return err
		}
		off += int64(len(b))
		v.initJob.update(func(s *InitStatus) {
			s.DoneBytes = off
			s.Journaled += journaled
		})
	}
	v.log.Info("initialize done", "size", v.size)
	return nil
}

// waitRoom waits until background journaling may proceed.
func (v *volume) waitRoom(ctx context.Context) error {
	if v.space.roomy() {
		return nil
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !v.space.roomy() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("initialize of volume %s interrupted: %w", v.name, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// initBlock journals one block with the image's current content unless it is
// all zeros; in pull-ahead it marks the block dirty instead.
func (v *volume) initBlock(off int64, b []byte) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.img.readAt(b, off); err != nil {
		return 0, fmt.Errorf("volume %s: initialize: %w", v.name, err)
	}
	if isZero(b) {
		return 0, nil
	}
	if v.pullAhead {
		v.dirty.set(off, int64(len(b)))
		return 0, nil
	}
	_, err := v.jw.Write(off, b)
	if err == nil {
		err = v.sealIfFull()
	}
	if err != nil {
		return 0, fmt.Errorf("volume %s: initialize: journal %d+%d: %w", v.name, off, len(b), err)
	}
	return int64(len(b)), nil
}
