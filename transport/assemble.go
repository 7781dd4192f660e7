package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ErrPart wraps the errors of a malformed or unexpected part record.
var ErrPart = errors.New("bad part record")

// Assembler is the receiving side of transfers: Receive registers a
// transfer and returns its bytes once every part arrived; ServeLane reads
// the part records of one part stream, from any connection of the peer.
//
// A part may arrive before its transfer is registered (its file stream
// travels on another connection): it is kept aside, up to a memory bound
// and for a while, and put in place at registration. Parts of transfers
// already finished are acknowledged and dropped (a copy sent again).
type Assembler struct {
	keep     time.Duration // how long a part waits for its transfer
	maxEarly int64         // bytes of parts kept for unregistered transfers
	log      *slog.Logger
	start    time.Time // the clock of the status reports

	mu         sync.Mutex
	xfers      map[TransferID]*incoming
	recent     map[TransferID]time.Time // finished transfers
	early      map[TransferID][]earlyPart
	earlyBytes int64
}

// earlyPart is a part that came before its transfer was registered.
type earlyPart struct {
	index int
	data  []byte
	at    time.Time
}

// AssemblerConfig tunes an Assembler; zero fields mean defaults.
type AssemblerConfig struct {
	// Keep is how long a part that came before its transfer waits for it.
	// 0 means 2 minutes.
	Keep time.Duration
	// MaxEarly bounds the bytes of such parts; more are refused (the sender
	// sends them again later). 0 means 64 MiB.
	MaxEarly int64
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// NewAssembler returns an assembler.
func NewAssembler(cfg AssemblerConfig) *Assembler {
	if cfg.Keep <= 0 {
		cfg.Keep = 2 * time.Minute
	}
	if cfg.MaxEarly <= 0 {
		cfg.MaxEarly = 64 << 20
	}
	return &Assembler{keep: cfg.Keep, maxEarly: cfg.MaxEarly, log: orDefault(cfg.Logger), start: time.Now(),
		xfers: map[TransferID]*incoming{}, recent: map[TransferID]time.Time{}, early: map[TransferID][]earlyPart{}}
}

// incoming is a transfer being received.
type incoming struct {
	buf      []byte
	partSize int
	have     []bool
	missing  int
	err      error // a part that does not fit: the transfer fails
	done     chan struct{}
}

// place puts part index in the transfer (a.mu held); a part that does not
// fit the transfer's layout fails it.
func (x *incoming) place(id TransferID, index int, data []byte) {
	if x.missing == 0 || x.err != nil {
		return
	}
	if err := checkPart(len(x.buf), x.partSize, index, len(data)); err != nil {
		x.err = fmt.Errorf("transfer %s: %w", id, err)
		close(x.done)
		return
	}
	if x.have[index] {
		return
	}
	copy(x.buf[index*x.partSize:], data)
	x.have[index] = true
	x.missing--
	if x.missing == 0 {
		close(x.done)
	}
}

// checkPart reports whether part index of length bytes fits a transfer of
// size bytes in parts of partSize.
func checkPart(size, partSize, index, length int) error {
	n := (size + partSize - 1) / partSize
	if index < 0 || index >= n {
		return fmt.Errorf("%w: part %d of a transfer of %d parts", ErrPart, index, n)
	}
	if want := min(partSize, size-index*partSize); length != want {
		return fmt.Errorf("%w: part %d of %d bytes, want %d", ErrPart, index, length, want)
	}
	return nil
}

// Receive registers transfer id of size bytes in parts of partSize and
// waits until every part arrived (then returns the bytes), a part does not
// fit, or ctx ends. The caller checks the content (the parts are only put
// in place).
func (a *Assembler) Receive(ctx context.Context, id TransferID, size int64, partSize int) ([]byte, error) {
	if partSize < MinPartSize || partSize > MaxPartSize {
		return nil, fmt.Errorf("%w: transfer %s: part size %d outside [%d, %d]", ErrPart, id, partSize, MinPartSize, MaxPartSize)
	}
	if size < 0 || size > 1<<40 {
		return nil, fmt.Errorf("%w: transfer %s: size %d", ErrPart, id, size)
	}
	n := int((size + int64(partSize) - 1) / int64(partSize))
	x := &incoming{buf: make([]byte, size), partSize: partSize, have: make([]bool, n), missing: n, done: make(chan struct{})}
	if n == 0 {
		close(x.done)
	}
	a.mu.Lock()
	if _, dup := a.xfers[id]; dup {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: transfer %s registered twice", ErrPart, id)
	}
	a.xfers[id] = x
	for _, ep := range a.early[id] {
		x.place(id, ep.index, ep.data)
		a.earlyBytes -= int64(len(ep.data))
	}
	delete(a.early, id)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.xfers, id)
		a.recent[id] = time.Now()
		a.prune(time.Now())
		a.mu.Unlock()
	}()
	select {
	case <-x.done:
		if x.err != nil {
			return nil, x.err
		}
		return x.buf, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("transfer %s: %w", id, context.Cause(ctx))
	}
}

// prune forgets finished transfers and early parts after a while (a.mu
// held).
func (a *Assembler) prune(now time.Time) {
	for id, at := range a.recent {
		if now.Sub(at) > 2*a.keep {
			delete(a.recent, id)
		}
	}
	for id, eps := range a.early {
		if now.Sub(eps[0].at) > a.keep {
			for _, ep := range eps {
				a.earlyBytes -= int64(len(ep.data))
			}
			delete(a.early, id)
		}
	}
}

// deliver takes one part and returns its status byte.
func (a *Assembler) deliver(id TransferID, index int, data []byte) byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if x, ok := a.xfers[id]; ok {
		x.place(id, index, data)
		return partStored
	}
	if _, ok := a.recent[id]; ok {
		return partStored // a copy of a part of a finished transfer
	}
	now := time.Now()
	a.prune(now)
	if a.earlyBytes+int64(len(data)) > a.maxEarly {
		return partRefused
	}
	a.early[id] = append(a.early[id], earlyPart{index: index, data: data, at: now})
	a.earlyBytes += int64(len(data))
	return partStored
}

// ServeLane reads the part records of st (whose first byte, PartTag, the
// caller has read) and answers each with its status report, until the
// stream ends. A malformed record resets the stream. received is the
// bytes the connections from st's peer have received so far (the sum of
// their quic.Conn.ConnectionStats().BytesReceived): the reports carry it,
// with the time, for the sender's rate controller.
func (a *Assembler) ServeLane(ctx context.Context, st *quic.Stream, received func() uint64) error {
	err := a.serveRecords(st, st, received)
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		_ = st.Close()
		return nil
	}
	st.CancelRead(partStreamError)
	st.CancelWrite(partStreamError)
	return err
}

// serveRecords reads part records from rd (its first tag byte already
// read) and writes a status report for each to w.
func (a *Assembler) serveRecords(rd io.Reader, w io.Writer, received func() uint64) error {
	r := bufio.NewReaderSize(rd, 64<<10)
	var h [partHeaderLen]byte
	h[0] = PartTag // read by the caller for the first record
	first := true
	for {
		hdr := h[:]
		if first {
			hdr = h[1:]
		}
		if _, err := io.ReadFull(r, hdr); err != nil {
			if first || !errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: header: %v", ErrPart, err)
			}
			return io.EOF
		}
		first = false
		id, index, length, err := parsePartHeader(h)
		if err != nil {
			return err
		}
		data := make([]byte, length)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("%w: transfer %s part %d: %v", ErrPart, id, index, err)
		}
		code := a.deliver(id, index, data)
		if _, err := w.Write(appendStatus(nil, code, time.Since(a.start), received())); err != nil {
			return fmt.Errorf("part status: %w", err)
		}
	}
}

// parsePartHeader decodes a part record's header.
func parsePartHeader(h [partHeaderLen]byte) (id TransferID, index, length int, err error) {
	if h[0] != PartTag {
		return id, 0, 0, fmt.Errorf("%w: record opens with %#x, not %#x", ErrPart, h[0], PartTag)
	}
	copy(id[:], h[1:17])
	index = int(binary.BigEndian.Uint32(h[17:]))
	length = int(binary.BigEndian.Uint32(h[21:]))
	if length == 0 || length > MaxPartSize {
		return id, 0, 0, fmt.Errorf("%w: transfer %s part %d of %d bytes (at most %d)", ErrPart, id, index, length, MaxPartSize)
	}
	return id, index, length, nil
}
