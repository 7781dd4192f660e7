package aimsrc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
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

// requestInit starts an initialize of the volume (run by serveInit).
func (v *volume) requestInit() (InitStatus, error) {
	v.initJob.mu.Lock()
	if v.initJob.st.Running {
		v.initJob.mu.Unlock()
		return v.initJob.status(), fmt.Errorf("volume %s: %w", v.name, ErrInitRunning)
	}
	now := v.now()
	v.initJob.st = InitStatus{Running: true, TotalBytes: v.size, Started: &now}
	v.initJob.mu.Unlock()
	v.initReq <- struct{}{} // buffered and drained before Running can be set again
	return v.initJob.status(), nil
}

// serveInit runs requested initializes until ctx ends.
func (v *volume) serveInit(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-v.initReq:
		}
		err := v.runInit(ctx)
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

// runInit journals the whole volume once, block by block, skipping all-zero
// blocks. Each block is read and journaled under the volume lock, so live
// writes and markers interleave in order. It waits while the source buffer
// is above its low-water mark.
func (v *volume) runInit(ctx context.Context) error {
	v.log.Info("initialize started", "size", v.size)
	buf := make([]byte, DefaultInitBlock)
	for off := int64(0); off < v.size; off += int64(len(buf)) {
		if err := v.waitRoom(ctx); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), v.size-off)]
		journaled, err := v.initBlock(off, b)
		if err != nil {
			return err
		}
		v.initJob.update(func(s *InitStatus) {
			s.DoneBytes = off + int64(len(b))
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
	_, err := v.appendRec(int64(len(b)), func() (uint64, error) { return v.jw.Write(off, b) })
	if err == nil {
		err = v.sealFull()
	}
	if err != nil {
		return 0, fmt.Errorf("volume %s: initialize: journal %d+%d: %w", v.name, off, len(b), err)
	}
	return int64(len(b)), nil
}
