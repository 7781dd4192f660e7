package proxy

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pieceWriter records the size of every Write it gets.
type pieceWriter struct {
	bytes.Buffer
	sizes []int
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.Buffer.Write(p)
}

// TestCountingWriterPieces: a large write reaches the writer below in pieces
// of at most countPiece bytes, all counted, so the wire counter follows the
// bytes on a slow link instead of jumping once per file.
func TestCountingWriterPieces(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	var below pieceWriter
	data := bytes.Repeat([]byte{7}, 3*countPiece+100)
	n, err := countingWriter{w: &below, c: c}.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(data))
	}
	if got := testutil.ToFloat64(c); got != float64(len(data)) {
		t.Errorf("counted %v bytes, want %d", got, len(data))
	}
	if len(below.sizes) != 4 {
		t.Errorf("passed on in %d writes %v, want 4", len(below.sizes), below.sizes)
	}
	for _, s := range below.sizes {
		if s > countPiece {
			t.Errorf("a piece of %d bytes, want at most %d", s, countPiece)
		}
	}
	if !bytes.Equal(below.Bytes(), data) {
		t.Error("bytes passed on differ from the bytes written")
	}
}

// TestPeerUpMetric: the source edge reports its WAN session to the peer.
func TestPeerUpMetric(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	p := newPair(t, pairOpts{})
	if err := pushAll(ctx, p.client, makeJournal(t, "vol", randomBlocks(4, 4))); err != nil {
		t.Fatal(err)
	}
	if up := counter(t, p.srcReg, "aimwan_proxy_peer_up"); up != 1 {
		t.Fatalf("aimwan_proxy_peer_up = %v after a file went through, want 1", up)
	}
}

// TestLocalStoreCutsCloneTraffic: with its own chunk store the source edge
// sends a clone's rewritten blocks as deltas against the chunks they replace,
// so the clone costs far fewer wire bytes than without one (same data, side
// by side).
func TestLocalStoreCutsCloneTraffic(t *testing.T) {
	base := randomBlocks(11, 512) // 2 MiB
	clone := make([][]byte, len(base))
	for i, b := range base {
		clone[i] = b
		if i%25 == 7 { // 4% of the blocks get a few new bytes
			nb := bytes.Clone(b)
			copy(nb[100:], []byte("rewritten by the clone"))
			clone[i] = nb
		}
	}
	cloneWire := func(local bool) float64 {
		ctx := testCtx(t, 60*time.Second)
		p := newPair(t, pairOpts{local: local})
		if err := pushAll(ctx, p.client, makeJournal(t, "tmpl", base)); err != nil {
			t.Fatal(err)
		}
		before := counter(t, p.srcReg, "aimwan_proxy_wire_bytes_total")
		files := makeJournal(t, "clone", clone)
		if err := pushAll(ctx, p.client, files); err != nil {
			t.Fatal(err)
		}
		checkArrived(t, p.dst, files)
		return counter(t, p.srcReg, "aimwan_proxy_wire_bytes_total") - before
	}
	without, with := cloneWire(false), cloneWire(true)
	t.Logf("clone wire bytes: %.0f without a local store, %.0f with one (%.1fx less)", without, with, without/with)
	if with*2 > without {
		t.Errorf("a local store saved too little: %.0f wire bytes with it, %.0f without", with, without)
	}
}

// TestStoreMetrics: both edges export their stores' figures; the source
// edge with a local store exports its peer index too.
func TestStoreMetrics(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPair(t, pairOpts{local: true})
	files := makeJournal(t, "vol", randomBlocks(3, 256))
	if err := pushAll(ctx, p.client, files); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, files)
	for _, c := range []struct {
		reg   *prometheus.Registry
		name  string
		store string
	}{
		{p.destReg, "aimwan_proxy_store_chunks", "chunks"},
		{p.destReg, "aimwan_proxy_store_bytes", "chunks"},
		{p.srcReg, "aimwan_proxy_store_chunks", "chunks"},
		{p.srcReg, "aimwan_proxy_store_chunks", "peer_index"},
		{p.srcReg, "aimwan_proxy_store_capacity_bytes", "peer_index"},
	} {
		found := false
		for _, m := range family(t, c.reg, c.name).GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "store" && l.GetValue() == c.store {
					found = true
					if m.GetGauge().GetValue() <= 0 {
						t.Errorf("%s{store=%q} = %v, want > 0", c.name, c.store, m.GetGauge().GetValue())
					}
				}
			}
		}
		if !found {
			t.Errorf("%s{store=%q} not exported", c.name, c.store)
		}
	}
	if family(t, p.destReg, "aimwan_proxy_store_disk_reads_total") == nil {
		t.Error("aimwan_proxy_store_disk_reads_total not exported")
	}
}
