package aimdst

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/push"
)

// TestSums: checksums are answered only for the stream the volume is bound
// to; they are the SHA-256 of each range of the destaged volume, cut at the
// request's end, bytes past the volume file reading as zeros.
func TestSums(t *testing.T) {
	tn := newTestNode(t, nil)
	ctx := context.Background()
	q := push.SumRequest{Volume: "vol", Stream: streamA, End: 2 * idVolSize, Offset: 0, Range: 16 << 10, Count: 9}
	if _, err := tn.n.Sums(ctx, push.Hello{Node: "src"}, q); !errors.Is(err, push.ErrUnavailable) {
		t.Fatalf("unbound volume answered: %v", err)
	}
	a := newSrcJournal(t, filepath.Join(t.TempDir(), "a"), streamA, 1)
	a.writes(20)
	a.close()
	deliverAll(t, tn.n, "vol", a.files(1, a.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	sums, err := tn.n.Sums(ctx, push.Hello{Node: "src"}, q)
	if err != nil {
		t.Fatal(err)
	}
	img := append(testkit.ReadFile(t, tn.volPath), make([]byte, 2*idVolSize)...)[:2*idVolSize]
	for i, s := range sums {
		want := sha256.Sum256(img[i*16<<10 : min((i+1)*16<<10, 2*idVolSize)])
		if s != want {
			t.Fatalf("checksum %d differs", i)
		}
	}
	if got := testutil.ToFloat64(tn.n.metrics.sumBytes.WithLabelValues("vol")); got <= 0 {
		t.Fatalf("checksum bytes metric %v", got)
	}
	for name, c := range map[string]struct {
		q    push.SumRequest
		want error
	}{
		"other stream":   {push.SumRequest{Volume: "vol", Stream: streamB, End: idVolSize, Range: 4096, Count: 1}, push.ErrUnavailable},
		"unknown volume": {push.SumRequest{Volume: "nope", Stream: streamA, End: idVolSize, Range: 4096, Count: 1}, push.ErrUnknownVolume},
		"bad range":      {push.SumRequest{Volume: "vol", Stream: streamA, End: idVolSize, Range: 5000, Count: 1}, push.ErrBadOffer},
	} {
		if _, err := tn.n.Sums(ctx, push.Hello{Node: "src"}, c.q); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
