package dedupe

import (
	"testing"
)

// cloneRun is what sending n clones of a template cost.
type cloneRun struct {
	wire      []int // wire bytes of each clone (misses and answers included)
	missBytes []int // payload bytes of each clone the receiver asked back
	refreshed uint64
}

// sendClones sends a template, then n clones of it (5% of their blocks
// rewritten each) through a pair whose store holds about two clones, the
// peer index sized to it.
func sendClones(t *testing.T, n int) cloneRun {
	t.Helper()
	const capacity = 16 << 20
	st := openTestStore(t, StoreConfig{MaxBytes: capacity})
	e, _ := NewEncoder(EncoderConfig{})
	if err := e.Peer().SetPeerCapacity(capacity); err != nil {
		t.Fatal(err)
	}
	d, _ := NewDecoder(DecoderConfig{Store: st})
	pr := &pair{enc: e, dec: d, store: st}
	g := newImageGen(11)
	tpl := g.template(8 << 20)
	pr.send(t, tpl)
	var r cloneRun
	for range n {
		img, _ := g.clone(tpl, 0.05)
		stream, _, err := e.Encode(nil, img)
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Decode(stream)
		if err != nil {
			t.Fatal(err)
		}
		wire, missed := len(stream), p.Stats().MissBytes
		if !p.Complete() {
			ml := p.AppendMissList(nil)
			ans, err := e.Answer(nil, img, ml)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Resolve(ans); err != nil {
				t.Fatal(err)
			}
			wire += len(ml) + len(ans)
		}
		if _, err := p.Payload(); err != nil {
			t.Fatal(err)
		}
		if testing.Verbose() {
			ss, ps := st.Stats(), e.Peer().Stats()
			t.Logf("clone: wire %d missed %d | store %d chunks %d refreshed %d evicted %d | index %d chunks %d refreshed %d evicted %d",
				wire, missed, ss.Bytes, ss.Chunks, ss.Refreshed, ss.EvictedBytes, ps.Bytes, ps.Chunks, ps.Refreshed, ps.EvictedBytes)
		}
		r.wire = append(r.wire, wire)
		r.missBytes = append(r.missBytes, missed)
	}
	r.refreshed = st.Stats().Refreshed
	return r
}

// TestRefreshKeepsTemplate: a template's chunks, referenced by every clone,
// stay in a store that holds only about two clones: the clones after the
// store has cycled cost about what the first ones did.
func TestRefreshKeepsTemplate(t *testing.T) {
	r := sendClones(t, 16)
	total, missed := 0, 0
	for k := range r.wire {
		total += r.wire[k]
		missed += r.missBytes[k]
	}
	t.Logf("wire bytes per clone: %v (%d in all); bytes asked back: %v; chunks refreshed %d", r.wire, total,
		r.missBytes, r.refreshed)
	first := r.wire[0] + r.wire[1] + r.wire[2]
	last := r.wire[len(r.wire)-3] + r.wire[len(r.wire)-2] + r.wire[len(r.wire)-1]
	if r.refreshed == 0 || last > first*3/2 {
		t.Errorf("the last 3 clones cost %d bytes, the first 3 %d (%d chunks refreshed): the template left the store",
			last, first, r.refreshed)
	}
	// The peer index refreshes the same chunks as the store: it does not
	// believe in chunks the store let go.
	if missed > total/20 {
		t.Errorf("%d bytes asked back of %d sent: the peer index and the store refreshed different chunks", missed, total)
	}
}
