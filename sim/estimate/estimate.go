package estimate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/dedupe"
)

// Input is one image to estimate.
type Input struct {
	// Name labels the image in the result (its path, or clone-N).
	Name string
	// R is read to EOF.
	R io.Reader
	// Size is the expected size, for progress only (0 = unknown).
	Size int64
}

// Config of an estimate. The zero value means the proxies' default chunking
// and one compression worker per CPU.
type Config struct {
	// Params are the chunking parameters (zero: the proxies' defaults).
	Params dedupe.Params
	// Workers compress unique chunks in parallel (default GOMAXPROCS).
	Workers int
	// Progress, when set, is called about every ProgressEvery with the bytes
	// read so far and the total expected (0 when unknown).
	Progress func(done, total int64)
	// ProgressEvery is the period of Progress calls (default 5s).
	ProgressEvery time.Duration
}

// Image is what one image holds and adds to the images before it.
type Image struct {
	Name      string `json:"name"`
	Bytes     int64  `json:"bytes"`      // bytes read
	ZeroBytes int64  `json:"zero_bytes"` // in zero runs of at least the zero-run size
	Chunks    int64  `json:"chunks"`
	// NewChunks, NewBytes: chunks (and their bytes) not seen in this image
	// before or in an earlier image.
	NewChunks int64 `json:"new_chunks"`
	NewBytes  int64 `json:"new_bytes"`
	// NewCompressed is NewBytes compressed chunk by chunk: what the image
	// adds to the estimate.
	NewCompressed int64 `json:"new_compressed_bytes"`
}

// Result is the estimate of a set of images.
type Result struct {
	Params     string  `json:"params"`     // the chunking parameters' ID
	Compressor string  `json:"compressor"` // e.g. "libzstd 1.5.7 level 3"
	Images     []Image `json:"images"`
	Bytes      int64   `json:"bytes"`
	ZeroBytes  int64   `json:"zero_bytes"`
	Chunks     int64   `json:"chunks"`
	// UniqueChunks and UniqueBytes: deduplicated over all images.
	UniqueChunks int64 `json:"unique_chunks"`
	UniqueBytes  int64 `json:"unique_bytes"`
	// EstimateBytes is the estimate: the unique chunks, each compressed.
	EstimateBytes int64 `json:"estimate_bytes"`
	// Reduction is Bytes / EstimateBytes.
	Reduction float64 `json:"reduction"`
	ElapsedS  float64 `json:"elapsed_s"`
	MBps      float64 `json:"mb_per_s"` // bytes read per second, in MB (10^6)
}

// key is a fingerprint prefix: 128 bits, so a collision among even
// billions of chunks is out of reach.
type key [16]byte

// batchBytes is the data of unique chunks handed to a compression worker at
// once.
const batchBytes = 1 << 20

// batch is a run of unique chunks of one image, back to back.
type batch struct {
	img  int
	data []byte
	lens []int
}

// Run estimates the images, in order. The readers are read to EOF one after
// another.
func Run(ctx context.Context, in []Input, cfg Config) (*Result, error) {
	p, err := cfg.Params.Normalize()
	if err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, errors.New("estimate: no images")
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	every := cfg.ProgressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	res := &Result{Params: p.ID(), Compressor: compressorName, Images: make([]Image, len(in))}
	compressed := make([]atomic.Int64, len(in))
	free := make(chan *batch, 2*workers+1) // bounds the data in flight
	for range cap(free) {
		free <- &batch{data: make([]byte, 0, batchBytes+dedupe.MaxChunkLimit)}
	}
	work := make(chan *batch)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			c, err := newCompressor()
			if err != nil {
				return err
			}
			var out []byte
			for b := range work {
				var sum int64
				off := 0
				for _, n := range b.lens {
					if out, err = c.compress(out[:0], b.data[off:off+n]); err != nil {
						return fmt.Errorf("estimate: compress a chunk of %s: %w", in[b.img].Name, err)
					}
					sum += int64(len(out))
					off += n
				}
				compressed[b.img].Add(sum)
				b.data, b.lens = b.data[:0], b.lens[:0]
				free <- b
			}
			return nil
		})
	}
	start := time.Now()
	g.Go(func() error {
		defer close(work)
		return scanAll(gctx, in, p, res, free, work, progress(cfg.Progress, every, in))
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range res.Images {
		im := &res.Images[i]
		im.NewCompressed = compressed[i].Load()
		res.Bytes += im.Bytes
		res.ZeroBytes += im.ZeroBytes
		res.Chunks += im.Chunks
		res.UniqueChunks += im.NewChunks
		res.UniqueBytes += im.NewBytes
		res.EstimateBytes += im.NewCompressed
	}
	if res.EstimateBytes > 0 {
		res.Reduction = float64(res.Bytes) / float64(res.EstimateBytes)
	}
	res.ElapsedS = time.Since(start).Seconds()
	if res.ElapsedS > 0 {
		res.MBps = float64(res.Bytes) / 1e6 / res.ElapsedS
	}
	return res, nil
}

// scanAll chunks the images in order, keeps the first occurrence of every
// chunk and hands the unique chunks' bytes to the workers in batches.
func scanAll(ctx context.Context, in []Input, p dedupe.Params, res *Result, free, work chan *batch, tick func(int64)) error {
	seen := make(map[key]struct{})
	var done int64
	for i, im := range in {
		st := &res.Images[i]
		st.Name = im.Name
		var b *batch
		send := func() error {
			if b == nil || len(b.lens) == 0 {
				return nil
			}
			select {
			case work <- b:
				b = nil
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ss, err := dedupe.Scan(ctx, im.R, p, func(pc dedupe.ScanPiece) error {
			if pc.Data == nil {
				done += int64(pc.Zero)
				tick(done)
				return nil
			}
			done += int64(len(pc.Data))
			st.Chunks++
			sum := sha256.Sum256(pc.Data)
			k := key(sum[:16])
			if _, dup := seen[k]; dup {
				return nil
			}
			seen[k] = struct{}{}
			st.NewChunks++
			st.NewBytes += int64(len(pc.Data))
			if b == nil {
				select {
				case b = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
				b.img = i
			}
			b.data = append(b.data, pc.Data...)
			b.lens = append(b.lens, len(pc.Data))
			if len(b.data) >= batchBytes {
				if err := send(); err != nil {
					return err
				}
			}
			tick(done)
			return nil
		})
		if err == nil {
			err = send()
		}
		if err != nil {
			return fmt.Errorf("estimate %s: %w", im.Name, err)
		}
		st.Bytes, st.ZeroBytes = ss.Bytes, ss.ZeroBytes
	}
	return nil
}

// progress returns the tick the scanner calls with the bytes done: it
// calls fn about every period.
func progress(fn func(done, total int64), every time.Duration, in []Input) func(int64) {
	if fn == nil {
		return func(int64) {}
	}
	var total int64
	for _, im := range in {
		total += im.Size
	}
	next := time.Now().Add(every)
	var calls int
	return func(done int64) {
		if calls++; calls%256 != 0 { // time.Now is cheap, but not free
			return
		}
		if now := time.Now(); now.After(next) {
			next = now.Add(every)
			fn(done, total)
		}
	}
}
