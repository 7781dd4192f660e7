package proxy

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/transport/push"
)

// TestSumsThroughPair: a checksum request from src crosses the pair on its
// own WAN stream and comes back with dst's answer, or with dst's refusal as
// the same push code; files keep flowing on the same connections.
func TestSumsThroughPair(t *testing.T) {
	bound := [16]byte{7}
	dst := &fakeDst{sums: func(q push.SumRequest) ([][push.SumSize]byte, error) {
		if q.Stream != bound {
			return nil, fmt.Errorf("%w: volume %s is not bound to that stream yet", push.ErrUnavailable, q.Volume)
		}
		out := make([][push.SumSize]byte, q.Count)
		for i := range out {
			out[i] = sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(q.Offset+int64(i)*q.Range)))
		}
		return out, nil
	}}
	p := newPair(t, pairOpts{dst: dst})
	ctx := testCtx(t, 30*time.Second)
	q := push.SumRequest{Volume: "vol", Stream: bound, End: 1 << 30, Offset: 1 << 20, Range: 4096, Count: push.MaxSums}
	wire := counter(t, p.srcReg, metrics.ProxyWire)
	sums, err := p.client.Sums(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != q.Count || sums[5] != sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(q.Offset+5*q.Range))) {
		t.Fatalf("checksums through the pair: %d, wrong content", len(sums))
	}
	if got := counter(t, p.srcReg, metrics.ProxyWire) - wire; got <= 0 || got > 1024 {
		t.Fatalf("source edge wire bytes for a checksum request: %v", got)
	}
	q.Stream = [16]byte{8}
	if _, err := p.client.Sums(ctx, q); !errors.Is(err, push.ErrUnavailable) {
		t.Fatalf("dst's refusal through the pair: %v", err)
	}
	files := makeJournal(t, "vol", randomBlocks(3, 8))
	if err := pushAll(ctx, p.client, files); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, dst, files)
	// A dst that does not answer checksums: its refusal comes back.
	dst.mu.Lock()
	dst.sums = nil
	dst.mu.Unlock()
	q.Stream = bound
	if _, err := p.client.Sums(ctx, q); !errors.Is(err, push.ErrUnknownVolume) {
		t.Fatalf("dst without checksums: %v", err)
	}
}
