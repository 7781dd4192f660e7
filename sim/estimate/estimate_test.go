package estimate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/sim/workload"
)

// images returns a generated template and two clones of it.
func images(t *testing.T, size int64) [][]byte {
	t.Helper()
	tpl, err := workload.NewTemplate(workload.Config{Size: size, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, im := range []*workload.Image{tpl.Image(), tpl.Clone(1), tpl.Clone(2)} {
		var b bytes.Buffer
		if _, err := im.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

func inputs(names []string, data ...[]byte) []Input {
	var in []Input
	for i, d := range data {
		in = append(in, Input{Name: names[i], R: bytes.NewReader(d), Size: int64(len(d))})
	}
	return in
}

// reference computes the estimate the slow, obvious way: every chunk of
// every image in order, the first occurrence of each SHA-256 compressed
// alone, one after another.
func reference(t *testing.T, data ...[]byte) (uniqueBytes, estimate int64, newPer []int64) {
	t.Helper()
	c, err := newCompressor()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[32]byte]bool{}
	for _, d := range data {
		var added int64
		_, err := dedupe.Scan(context.Background(), bytes.NewReader(d), dedupe.Params{}, func(pc dedupe.ScanPiece) error {
			if pc.Data == nil {
				return nil
			}
			fp := sha256.Sum256(pc.Data)
			if seen[fp] {
				return nil
			}
			seen[fp] = true
			uniqueBytes += int64(len(pc.Data))
			out, err := c.compress(nil, pc.Data)
			estimate += int64(len(out))
			added += int64(len(out))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		newPer = append(newPer, added)
	}
	return uniqueBytes, estimate, newPer
}

func TestEstimate(t *testing.T) {
	imgs := images(t, 24<<20)
	zeros := make([]byte, 5<<20)
	cases := []struct {
		name  string
		data  [][]byte
		check func(t *testing.T, r *Result)
	}{
		{"template and clones", imgs, func(t *testing.T, r *Result) {
			// Clones rewrite about 1.5% of the blocks: each adds a few
			// percent of the template's cost.
			first := r.Images[0].NewCompressed
			for _, im := range r.Images[1:] {
				if im.NewCompressed <= 0 || im.NewCompressed > first/5 {
					t.Errorf("%s adds %d bytes to the template's %d", im.Name, im.NewCompressed, first)
				}
			}
			if r.Reduction < 4 {
				t.Errorf("reduction %.1fx: three near-identical images should dedupe and compress far better", r.Reduction)
			}
		}},
		{"the same image twice", [][]byte{imgs[0], imgs[0]}, func(t *testing.T, r *Result) {
			if r.Images[1].NewChunks != 0 || r.Images[1].NewCompressed != 0 || r.Images[1].Chunks != r.Images[0].Chunks {
				t.Errorf("second copy: %+v", r.Images[1])
			}
		}},
		{"zeros only", [][]byte{zeros}, func(t *testing.T, r *Result) {
			if r.Chunks != 0 || r.EstimateBytes != 0 || r.ZeroBytes != int64(len(zeros)) || r.Reduction != 0 {
				t.Errorf("zero image: %+v", r)
			}
		}},
		{"empty image", [][]byte{nil, imgs[1]}, func(t *testing.T, r *Result) {
			if r.Images[0].Bytes != 0 || r.Images[1].Bytes != int64(len(imgs[1])) {
				t.Errorf("%+v", r.Images)
			}
		}},
	}
	names := []string{"a", "b", "c"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uniq, est, per := reference(t, tc.data...)
			for _, workers := range []int{1, 3} {
				r, err := Run(context.Background(), inputs(names, tc.data...), Config{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				var total int64
				for i, d := range tc.data {
					total += int64(len(d))
					if r.Images[i].Name != names[i] || r.Images[i].Bytes != int64(len(d)) || r.Images[i].NewCompressed != per[i] {
						t.Errorf("workers %d: image %d: %+v, want %d bytes adding %d", workers, i, r.Images[i], len(d), per[i])
					}
				}
				if r.Bytes != total || r.UniqueBytes != uniq || r.EstimateBytes != est || r.Params != (dedupe.Params{}).ID() || r.Compressor == "" {
					t.Fatalf("workers %d: %+v; want %d bytes, %d unique, estimate %d", workers, r, total, uniq, est)
				}
				tc.check(t, r)
			}
		})
	}
}

func TestEstimateStreams(t *testing.T) {
	// An image larger than the scanner's buffer, read in odd pieces, costs
	// what the same bytes cost in one piece.
	img := images(t, 20<<20)[1]
	want, err := Run(context.Background(), inputs([]string{"x"}, img), Config{})
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	got, err := Run(context.Background(), []Input{{Name: "x", R: io.MultiReader(bytes.NewReader(img[:3<<20+1]), bytes.NewReader(img[3<<20+1:]))}},
		Config{Progress: func(done, total int64) { calls++ }, ProgressEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.EstimateBytes != want.EstimateBytes || got.UniqueChunks != want.UniqueChunks || calls == 0 {
		t.Errorf("split reads: %d bytes, %d chunks (progress calls %d); whole: %d, %d", got.EstimateBytes, got.UniqueChunks, calls, want.EstimateBytes, want.UniqueChunks)
	}
}

func TestEstimateErrors(t *testing.T) {
	broken := errors.New("disk error")
	_, err := Run(context.Background(), []Input{{Name: "bad.img", R: io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), errReader{broken})}}, Config{})
	if !errors.Is(err, broken) {
		t.Errorf("read error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, inputs([]string{"a"}, images(t, 1<<20)[0]), Config{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if _, err := Run(context.Background(), nil, Config{}); err == nil {
		t.Error("no images: no error")
	}
	if _, err := Run(context.Background(), inputs([]string{"a"}, []byte{1}), Config{Params: dedupe.Params{AvgSize: 1000}}); !errors.Is(err, dedupe.ErrParams) {
		t.Errorf("bad params: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
