package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/aimwan/aimwan/nbd"
	"github.com/aimwan/aimwan/sim/workload"
)

// image is one clone to create: what is written through NBD into a volume.
type image struct {
	volume string      // volume it is written into (vm1, vm2...)
	label  string      // clone-N or the user's path
	r      io.ReaderAt // its bytes
	size   int64
	close  func() error
	sha    [32]byte // SHA-256 of what was written (set by create)
	sent   written  // what creating it sent through NBD (set by create)
}

// workloadSet is the images of a run and the template they came from.
type workloadSet struct {
	images   []*image
	template *workload.Image // nil with the user's images
}

// prepareWorkload opens the user's images, or generates the template and
// three clones (seeded).
func prepareWorkload(cfg Config, sc Scale) (*workloadSet, error) {
	if len(cfg.Images) > 0 {
		ws := &workloadSet{}
		for i, p := range cfg.Images {
			f, err := os.Open(p)
			if err != nil {
				ws.close()
				return nil, fmt.Errorf("bench: image: %w", err)
			}
			st, err := f.Stat()
			if err == nil && (!st.Mode().IsRegular() || st.Size() == 0) {
				err = fmt.Errorf("%s: not a regular non-empty file", p)
			}
			if err != nil {
				f.Close()
				ws.close()
				return nil, fmt.Errorf("bench: image: %w", err)
			}
			ws.images = append(ws.images, &image{volume: fmt.Sprintf("vm%d", i+1), label: p, r: f, size: st.Size(), close: f.Close})
		}
		return ws, nil
	}
	t, err := workload.NewTemplate(workload.Config{Size: sc.TemplateSize, Seed: cfg.Seed})
	if err != nil {
		return nil, fmt.Errorf("bench: workload: %w", err)
	}
	ws := &workloadSet{template: t.Image()}
	for i := 1; i <= 3; i++ {
		c := t.Clone(i)
		ws.images = append(ws.images, &image{volume: fmt.Sprintf("vm%d", i), label: fmt.Sprintf("clone-%d", i),
			r: c, size: c.Size(), close: func() error { return nil }})
	}
	return ws, nil
}

func (ws *workloadSet) close() {
	for _, im := range ws.images {
		if im.close != nil {
			im.close()
		}
	}
}

// volumes lays out the source and destination image paths.
func (ws *workloadSet) volumes(work string) []volume {
	var out []volume
	for _, im := range ws.images {
		out = append(out, volume{name: im.volume, size: im.size,
			srcPath: filepath.Join(work, "src-"+im.volume+".img"), dstPath: filepath.Join(work, "dst-"+im.volume+".img")})
	}
	return out
}

// writeTemplate writes the generated template to path (for --prime).
func (ws *workloadSet) writeTemplate(ctx context.Context, path string) error {
	if ws.template == nil {
		return errors.New("bench: no generated template to write")
	}
	return ws.template.WriteFile(ctx, path)
}

// createMode is how VMs are created.
type createMode struct {
	thin     bool // zero blocks as WRITE_ZEROES, not as data
	oneByOne bool // one image after another, not side by side
}

// create writes images through src's NBD export at addr, each into its own
// volume, side by side (VMs created at once) or one after another. written
// is told each image's progress.
func create(ctx context.Context, addr string, imgs []*image, mode createMode, written func(i int, n int64)) error {
	if mode.oneByOne {
		for i, im := range imgs {
			if err := createOne(ctx, addr, im, mode.thin, func(n int64) { written(i, n) }); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(imgs))
	for i, im := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = createOne(ctx, addr, im, mode.thin, func(n int64) { written(i, n) })
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func createOne(ctx context.Context, addr string, im *image, thin bool, progress func(int64)) error {
	c, err := nbd.Dial(ctx, addr, im.volume)
	if err != nil {
		return fmt.Errorf("create %s on %s: %w", im.label, im.volume, err)
	}
	defer c.Close()
	h := sha256.New()
	if im.sent, err = writeImage(ctx, c, im.r, im.size, thin, h, progress); err != nil {
		return fmt.Errorf("create %s on %s: %w", im.label, im.volume, err)
	}
	copy(im.sha[:], h.Sum(nil))
	return nil
}
