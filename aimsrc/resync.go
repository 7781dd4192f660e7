package aimsrc

import (
	"context"
	"fmt"
	"time"
)

// resyncRun is the most bytes one resync step journals.
const resyncRun = 1 << 20

// serveResync leaves pull-ahead when buffer space returns and journals the
// dirty regions again from the image, one run at a time, until the bitmap is
// empty. A journal failure ends it (and the node): the journal is broken and
// the node must restart to recover.
func (v *volume) serveResync(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			did, err := v.resyncStep()
			if err != nil {
				return err
			}
			if !did {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-v.spaceKick:
		}
	}
}

// resyncStep journals one run of dirty regions with the image's current
// content, makes it durable and clears the run's bits, all under the volume
// lock so no write can slip between reading and clearing. It reports whether
// it did anything.
func (v *volume) resyncStep() (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pullAhead {
		if !v.space.roomy() {
			return false, nil
		}
		v.pullAhead = false
		v.setState()
		v.log.Info("buffer space returned: leaving pull-ahead, resyncing dirty regions",
			"dirty_bytes", v.dirty.dirtyBytes())
	}
	if v.dirty.count.Load() == 0 || !v.space.roomy() {
		return false, nil
	}
	off, n, ok := v.dirty.next(v.resyncPos, resyncRun)
	if !ok {
		if off, n, ok = v.dirty.next(0, resyncRun); !ok {
			return false, nil
		}
	}
	if int64(len(v.resyncBuf)) < n { // one region may exceed a run (granularity above resyncRun)
		v.resyncBuf = make([]byte, max(n, resyncRun))
	}
	buf := v.resyncBuf[:n]
	if err := v.img.readAt(buf, off); err != nil {
		return false, fmt.Errorf("volume %s: resync: %w", v.name, err)
	}
	var err error
	if isZero(buf) {
		_, err = v.jw.Zero(off, n, false)
	} else {
		_, err = v.jw.Write(off, buf)
	}
	if err == nil {
		err = v.jw.Sync() // the bits may only go once the records are durable
	}
	if err == nil {
		err = v.sealIfFull()
	}
	if err != nil {
		return false, fmt.Errorf("volume %s: resync journal %d+%d: %w", v.name, off, n, err)
	}
	v.dirty.clear(off, n)
	v.resyncPos = off + n
	if v.dirty.count.Load() == 0 {
		if err := v.dirty.sync(); err != nil {
			return false, fmt.Errorf("volume %s: %w", v.name, err)
		}
		v.resyncPos = 0
		v.log.Info("resync complete: every write is journaled again")
	}
	v.setState()
	return true, nil
}
