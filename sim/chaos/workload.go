package chaos

import (
	"context"
	"fmt"
	"github.com/aimwan/aimwan/nbd"
	"math/rand/v2"
	"sync"
)

// opKind is what one request does.
type opKind uint8

const (
	opWrite opKind = iota
	opZero         // NBD_CMD_WRITE_ZEROES
	opTrim         // NBD_CMD_TRIM (aimwan makes trimmed ranges read as zeros)
)

// op is one request of a batch.
type op struct {
	vol  string
	kind opKind
	off  int64
	n    int
	data []byte // opWrite
}

// model holds what every volume must contain.
type model struct {
	vols map[string][]byte
}

func newModel(size int64) *model {
	m := &model{vols: map[string][]byte{}}
	for _, v := range volumeNames {
		m.vols[v] = make([]byte, size)
	}
	return m
}

// apply records a request the source node acknowledged.
func (m *model) apply(o op) {
	img := m.vols[o.vol]
	switch o.kind {
	case opWrite:
		copy(img[o.off:], o.data)
	default:
		clear(img[o.off : o.off+int64(o.n)])
	}
}

// copyOf returns a copy of a volume's expected content.
func (m *model) copyOf(vol string) []byte { return append([]byte(nil), m.vols[vol]...) }

// contentPool is a set of blocks reused by writes, so the proxies find
// duplicates (references) as well as new data (literals).
type contentPool struct{ blocks [][]byte }

func newContentPool(seed uint64) *contentPool {
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	p := &contentPool{}
	for range 16 {
		b := make([]byte, 64<<10)
		fillRandom(rng, b)
		p.blocks = append(p.blocks, b)
	}
	return p
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// genBatch makes a batch of up to cfg.WritesPerBatch requests (at least
// minBytes of written data) on random volumes: fresh random data, blocks
// from the pool (duplicates), zeroes and trims, 4 KiB aligned.
func genBatch(rng *rand.Rand, cfg Config, pool *contentPool, minBytes int) []op {
	nblocks := cfg.VolumeSize / blockSize
	maxBlocks := int64(cfg.MaxWrite / blockSize)
	var ops []op
	written := 0
	for i := 0; i < cfg.WritesPerBatch || written < minBytes; i++ {
		if i >= 10*cfg.WritesPerBatch+1000 {
			break // bounded even for a large minBytes
		}
		n := 1 + rng.Int64N(maxBlocks)
		off := rng.Int64N(nblocks-n+1) * blockSize
		o := op{vol: volumeNames[rng.IntN(len(volumeNames))], off: off, n: int(n * blockSize)}
		switch r := rng.IntN(100); {
		case r < 40:
			o.data = make([]byte, o.n)
			fillRandom(rng, o.data)
		case r < 85:
			o.data = make([]byte, o.n)
			for f := 0; f < o.n; f += blockSize {
				b := pool.blocks[rng.IntN(len(pool.blocks))]
				s := rng.IntN(len(b)/blockSize) * blockSize
				copy(o.data[f:f+blockSize], b[s:])
			}
		case r < 95:
			o.kind = opZero
		default:
			o.kind = opTrim
		}
		if o.kind == opWrite {
			written += o.n
		}
		ops = append(ops, o)
	}
	return ops
}

// writer issues requests through src's NBD exports, one connection per
// volume, reconnecting after a failure.
type writer struct {
	addr  string
	mu    sync.Mutex
	conns map[string]*nbd.Client
}

func newWriter(addr string) *writer { return &writer{addr: addr, conns: map[string]*nbd.Client{}} }

func (w *writer) conn(ctx context.Context, vol string) (*nbd.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.conns[vol]; c != nil {
		return c, nil
	}
	c, err := nbd.Dial(ctx, w.addr, vol)
	if err != nil {
		return nil, err
	}
	w.conns[vol] = c
	return c, nil
}

// reset drops every connection (after a failure or a restart of src).
func (w *writer) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for v, c := range w.conns {
		c.Abort()
		delete(w.conns, v)
	}
}

// close ends every connection cleanly.
func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for v, c := range w.conns {
		c.Close()
		delete(w.conns, v)
	}
}

// do issues one request.
func (w *writer) do(ctx context.Context, o op) error {
	c, err := w.conn(ctx, o.vol)
	if err != nil {
		return err
	}
	switch o.kind {
	case opWrite:
		err = c.WriteAt(o.data, o.off)
	case opZero:
		err = c.WriteZeroes(o.off, uint32(o.n))
	default:
		err = c.Trim(o.off, uint32(o.n))
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", o.vol, err)
	}
	return nil
}

// flush makes every acknowledged request durable on every volume.
func (w *writer) flush(ctx context.Context) error {
	for _, v := range volumeNames {
		c, err := w.conn(ctx, v)
		if err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("volume %s: flush: %w", v, err)
		}
	}
	return nil
}
