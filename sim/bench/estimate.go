package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aimwan/aimwan/sim/estimate"
	"github.com/aimwan/aimwan/sim/workload"
)

// estimate computes the offline estimate of the clones the run replicated
// (sim/estimate), in the order they were created, and sets it in the
// result with the wire bytes' ratio to it. It runs after the daemons have
// stopped, so it does not compete with them for CPU.
func (r *run) estimate(ctx context.Context) error {
	out := r.cfg.Progress
	fmt.Fprintln(out, "offline estimate of the clones (8 KiB content-defined chunks, unique ones each compressed with zstd -3)...")
	in, done := estimateInputs(r.ws.images)
	defer done()
	est, err := estimate.Run(ctx, in, estimate.Config{ProgressEvery: r.cfg.ProgressEvery, Progress: func(d, total int64) {
		fmt.Fprintf(out, "estimate: %s of %s read\n", mb(float64(d)), mb(float64(total)))
	}})
	if err != nil {
		return err
	}
	res := r.res
	res.Estimate, res.EstimateBytes = est, est.EstimateBytes
	if est.EstimateBytes > 0 {
		res.WireVsEstimate = float64(res.WireBytes) / float64(est.EstimateBytes)
	}
	fmt.Fprintf(out, "estimate: %s for %s in %s\n", mb(float64(est.EstimateBytes)), mb(float64(est.Bytes)),
		(time.Duration(est.ElapsedS * float64(time.Second))).Round(time.Second))
	return nil
}

// estimateInputs streams each image: a generated one through its parallel
// generator (a pipe), the user's file as it is. done stops the generators
// that are still running and waits for them.
func estimateInputs(imgs []*image) (in []estimate.Input, done func()) {
	var wg sync.WaitGroup
	var pipes []*io.PipeReader
	for _, im := range imgs {
		gen, ok := im.r.(*workload.Image)
		if !ok {
			in = append(in, estimate.Input{Name: im.label, R: io.NewSectionReader(im.r, 0, im.size), Size: im.size})
			continue
		}
		pr, pw := io.Pipe()
		pipes = append(pipes, pr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := gen.WriteTo(pw)
			pw.CloseWithError(err)
		}()
		in = append(in, estimate.Input{Name: im.label, R: pr, Size: im.size})
	}
	return in, func() {
		for _, pr := range pipes {
			pr.CloseWithError(io.ErrClosedPipe)
		}
		wg.Wait()
	}
}
