package workload

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// Template is a generated OS-disk image; its clones share its layout.
type Template struct {
	cfg    Config
	g      *gen
	layout []extent
}

// NewTemplate lays out a template. It is cheap: content is generated when
// read.
func NewTemplate(cfg Config) (*Template, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Template{cfg: cfg, g: newGen(cfg.Seed), layout: layout(cfg)}, nil
}

// Config returns the template's configuration with defaults filled in.
func (t *Template) Config() Config { return t.cfg }

// Image returns the template itself as an image.
func (t *Template) Image() *Image { return &Image{t: t, seed: t.cfg.Seed} }

// Clone returns clone i (i ≥ 1) of the template; its seed is derived from the
// template seed and i, so every clone differs from the others.
func (t *Template) Clone(i int) *Image { return t.CloneSeed(mix(t.cfg.Seed, 0xc10e0000+uint64(i))) }

// CloneSeed returns the clone made with an explicit seed.
func (t *Template) CloneSeed(seed uint64) *Image {
	return &Image{t: t, seed: seed, over: cloneChanges(t.cfg, t.layout, seed)}
}

// UsedBlocks returns, per kind, how many template blocks hold it.
func (t *Template) UsedBlocks() map[Kind]int64 {
	m := make(map[Kind]int64)
	for _, e := range t.layout {
		m[e.kind] += e.n
	}
	return m
}

// Image is a template or a clone: a deterministic virtual disk.
type Image struct {
	t    *Template
	seed uint64
	over []extent // blocks the clone rewrote, sorted; nil for the template
}

var _ io.ReaderAt = (*Image)(nil)

// Size returns the image size in bytes.
func (im *Image) Size() int64 { return im.t.cfg.Size }

// Reader returns a reader of the whole image from its start.
func (im *Image) Reader() *io.SectionReader { return io.NewSectionReader(im, 0, im.Size()) }

// BlockRange is a run of blocks: [Start, Start+Count).
type BlockRange struct {
	Start, Count int64
	Kind         Kind // content written there
}

// Changed returns the block ranges this image rewrote relative to the
// template (none for the template itself), sorted.
func (im *Image) Changed() []BlockRange {
	out := make([]BlockRange, len(im.over))
	for i, e := range im.over {
		out[i] = BlockRange{Start: e.start, Count: e.n, Kind: e.kind}
	}
	return out
}

// ChangedBlock reports whether block b differs in origin from the template.
func (im *Image) ChangedBlock(b int64) bool { return find(im.over, b) >= 0 }

// spec returns the extent that defines block b.
func (im *Image) spec(b int64) extent {
	if i := find(im.over, b); i >= 0 {
		return im.over[i]
	}
	if i := find(im.t.layout, b); i >= 0 {
		return im.t.layout[i]
	}
	return extent{start: b, n: 1, kind: KindFree}
}

// block writes block b into dst (len BlockSize).
func (im *Image) block(dst []byte, b int64) {
	e := im.spec(b)
	im.t.g.fill(dst, e.kind, e.seed, b)
	if e.tail != 0 && b == e.end()-1 {
		clear(dst[e.tail:])
	}
}

// ReadAt fills p with the image bytes at off. Reads past the end return
// io.EOF with the bytes available.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read workload image at %d: negative offset", off)
	}
	size := im.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		p = p[:size-off]
	}
	var buf [BlockSize]byte
	n := 0
	for n < len(p) {
		b, in := (off+int64(n))/BlockSize, int((off+int64(n))%BlockSize)
		if in == 0 && len(p)-n >= BlockSize {
			im.block(p[n:n+BlockSize], b)
			n += BlockSize
			continue
		}
		im.block(buf[:], b)
		n += copy(p[n:], buf[in:])
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// genChunk is the unit of parallel generation.
const genChunk = 1 << 20

// WriteTo writes the whole image to w, generating chunks on all cores.
func (im *Image) WriteTo(w io.Writer) (int64, error) {
	return im.generate(context.Background(), func(p []byte, off int64) error {
		_, err := w.Write(p)
		return err
	})
}

// WriteFile writes the image to path (created or truncated), leaving free
// space as holes where the filesystem allows.
func (im *Image) WriteFile(ctx context.Context, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write workload image: %w", err)
	}
	_, err = im.generate(ctx, func(p []byte, off int64) error {
		if allZero(p) {
			return nil
		}
		_, err := f.WriteAt(p, off)
		return err
	})
	if err == nil {
		err = f.Truncate(im.Size())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write workload image %s: %w", path, err)
	}
	return nil
}

// generate produces the image in order, chunk by chunk, calling emit from
// one goroutine. Workers run ahead by a bounded number of chunks.
func (im *Image) generate(ctx context.Context, emit func(p []byte, off int64) error) (int64, error) {
	workers := runtime.GOMAXPROCS(0)
	size := im.Size()
	chunks := (size + genChunk - 1) / genChunk
	type job struct {
		off  int64
		buf  []byte
		done chan struct{}
	}
	jobs := make(chan *job, workers*2)
	order := make(chan *job, workers*2)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { // dispatcher: hands chunks out in order
		defer close(jobs)
		defer close(order)
		for c := int64(0); c < chunks; c++ {
			j := &job{off: c * genChunk, done: make(chan struct{})}
			j.buf = make([]byte, min(genChunk, size-j.off))
			select {
			case order <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range workers {
		g.Go(func() error {
			for j := range jobs {
				im.ReadAt(j.buf, j.off) //nolint: the range is inside the image
				close(j.done)
			}
			return nil
		})
	}
	var written int64
	g.Go(func() error { // writer: emits chunks in order
		for j := range order {
			select {
			case <-j.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := emit(j.buf, j.off); err != nil {
				return err
			}
			written += int64(len(j.buf))
		}
		return nil
	})
	err := g.Wait()
	return written, err
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}
