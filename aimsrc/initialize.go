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
	"github.com/aimwan/aimwan/journal"
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
	Stream     string     `json:"stream,omitempty"` // the journal stream the initialize started
	// A delta initialize (by checksum comparison) also reports: DoneBytes
	// are the volume bytes compared so far, Journaled the bytes that
	// differed, SavedBytes the compared bytes not journaled, ChecksumBytes
	// the checksum exchange, Waiting why the far end does not answer yet.
	Delta         bool   `json:"delta,omitempty"`
	SavedBytes    int64  `json:"saved_bytes,omitempty"`
	ChecksumBytes int64  `json:"checksum_bytes,omitempty"`
	Waiting       string `json:"waiting,omitempty"`
}

// initJob tracks a volume's initialize.
//
// Lock order: req, then the volume's mu, then mu. mu is a leaf: nothing
// else is locked while it is held (heartbeatDue reads the status under the
// volume's mu). req serializes the requests to start an initialize, whose
// checkpoint takes the volume's mu.
type initJob struct {
	req sync.Mutex
	mu  sync.Mutex
	st  InitStatus
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

// requestInit starts an initialize of the volume (run by serveInit). It
// begins a new journal stream: its id is in the checkpoint before the
// journal starts it, so a resumed initialize continues the same stream.
// The checkpoint is written without initJob.mu held: it syncs the journal
// under the volume's mu, and a heartbeat check holding that mu reads the
// initialize's status (once, both waited for the other for ever).
func (v *volume) requestInit(delta bool) (InitStatus, error) {
	v.initJob.req.Lock()
	defer v.initJob.req.Unlock()
	if st := v.initJob.status(); st.Running {
		return st, fmt.Errorf("volume %s: %w", v.name, ErrInitRunning)
	}
	// Not running and req held: serveInit waits for the next request and
	// reads neither field until it arrives.
	v.initStream, v.initDelta = journal.NewStreamID(), delta
	if err := v.checkpointInit(0); err != nil {
		return InitStatus{}, err
	}
	v.initJob.mu.Lock()
	v.startInitLocked(0)
	v.initJob.mu.Unlock()
	return v.initJob.status(), nil
}

// startInitLocked marks an initialize from offset from as running and hands
// it to serveInit. Called with initJob.mu held.
func (v *volume) startInitLocked(from int64) {
	now := v.now()
	v.initJob.st = InitStatus{Running: true, TotalBytes: v.size, DoneBytes: from, Started: &now, Stream: v.initStream.String(), Delta: v.initDelta}
	v.initReq <- from // buffered and drained before Running can be set again
}

// startStream begins the initialize's journal stream (nothing when the
// journal is on it already: a resumed initialize). Every record after it
// goes to files of the new stream, the first of which says the stream
// starts there: the far end rebinds the volume at that file.
func (v *volume) startStream() error {
	if v.initStream.IsZero() {
		return nil // a checkpoint of an older build: the current stream goes on
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.jw.Stream() == v.initStream {
		return nil
	}
	kind := journal.StartFull
	if v.initDelta {
		kind = journal.StartDelta
	}
	if err := v.jw.StartStream(v.initStream, kind); err != nil {
		return fmt.Errorf("volume %s: initialize: start journal stream: %w", v.name, err)
	}
	seq, _ := v.jw.OpenStart()
	v.pushing.setStreamStart(seq)
	v.log.Info("initialize starts a new journal stream", "stream", v.initStream.String(), "file", seq)
	return nil
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
	// "OFFSET STREAM [delta]"; an older build wrote the offset alone.
	fields := strings.Fields(string(b))
	var from int64
	if len(fields) > 0 {
		from, err = strconv.ParseInt(fields[0], 10, 64)
	}
	if len(fields) >= 2 && err == nil {
		v.initStream, err = journal.ParseStreamID(fields[1])
	}
	v.initDelta = len(fields) == 3 && fields[2] == "delta"
	if len(fields) == 0 || len(fields) > 3 || (len(fields) == 3 && !v.initDelta) || err != nil || from < 0 || from > v.size ||
		(v.initDelta && from%deltaTop != 0 && from != v.size) {
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
	line := strconv.FormatInt(off, 10)
	if !v.initStream.IsZero() {
		line += " " + v.initStream.String()
	}
	if v.initDelta {
		line += " delta"
	}
	if err := durable.WriteFile(v.initPath, []byte(line+"\n"), 0o600); err != nil {
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
		run := v.runInit
		if v.initDelta {
			run = v.runDelta
		}
		err := run(ctx, from)
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

// runInit journals the volume from offset from to its end, block by block:
// a block's data, or a zero record for a run of all-zero blocks (no payload,
// but a far end that held other data there gets zeros: an initialize may
// replace a volume's old content). Each block is read and journaled under
// the volume lock, so live writes and markers interleave in order. It first
// starts the initialize's journal stream, waits while the source buffer is
// above its low-water mark, and checkpoints its progress every second and
// when ctx ends.
func (v *volume) runInit(ctx context.Context, from int64) error {
	v.log.Info("initialize started", "size", v.size, "from", from)
	if err := v.startStream(); err != nil {
		return err
	}
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
		done, journaled, err := v.initBlock(off, b)
		if err != nil {
			return err
		}
		off += done
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

// zeroRunBlocks is how many all-zero blocks one zero record may cover.
const zeroRunBlocks = 64

// initBlock journals the block at off (read into b) with the image's
// current content, or, when it is all zeros, one zero record for it and the
// all-zero blocks right after it (up to zeroRunBlocks); in pull-ahead it
// marks them dirty instead. It returns the volume bytes done and the data
// bytes journaled.
func (v *volume) initBlock(off int64, b []byte) (done, journaled int64, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.img.readAt(b, off); err != nil {
		return 0, 0, fmt.Errorf("volume %s: initialize: %w", v.name, err)
	}
	done = int64(len(b))
	zero := isZero(b)
	for zero && done < zeroRunBlocks*int64(len(b)) && off+done < v.size {
		next := b[:min(int64(len(b)), v.size-off-done)]
		if err := v.img.readAt(next, off+done); err != nil {
			return 0, 0, fmt.Errorf("volume %s: initialize: %w", v.name, err)
		}
		if !isZero(next) {
			break // read again as the next block
		}
		done += int64(len(next))
	}
	if v.pullAhead {
		v.dirty.set(off, done)
		return done, 0, nil
	}
	if zero {
		_, err = v.jw.Zero(off, done, false)
	} else {
		_, err = v.jw.Write(off, b)
		journaled = done
	}
	if err == nil {
		err = v.sealIfFull()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("volume %s: initialize: journal %d+%d: %w", v.name, off, done, err)
	}
	return done, journaled, nil
}
