package dedupe

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// loadCursor feeds a held cursor to x in pieces of max entries, as the
// proxies' handshake does, and returns the entries it gave.
func loadCursor(t *testing.T, x *PeerIndex, h *HeldCursor, max int) int64 {
	t.Helper()
	x.BeginHeld(h.Epoch)
	var n int64
	var piece []byte
	for {
		if piece = h.Next(piece[:0], max); len(piece) == 0 {
			break
		}
		if len(piece) > max*HeldEntryLen {
			t.Fatalf("a piece of %d bytes for at most %d entries", len(piece), max)
		}
		if err := x.AddHeld(piece); err != nil {
			t.Fatal(err)
		}
		n += int64(len(piece) / HeldEntryLen)
	}
	if n > h.Count {
		t.Fatalf("cursor gave %d entries, announced at most %d", n, h.Count)
	}
	x.EndHeld(h.Epoch, h.Mark)
	return n
}

// TestHeldCursorStreams: the streamed list, in small pieces, is the whole
// list (AppendHeld), across sealed containers and the open one.
func TestHeldCursorStreams(t *testing.T) {
	st := openTestStore(t, StoreConfig{Dir: t.TempDir(), MaxBytes: 16 << 20})
	putChain(st, chunkSeq(1, 300, 8<<10))
	whole := st.AppendHeld(nil)
	h := st.HeldFor(0, 0)
	if h.Count != 300 || h.Epoch != st.Epoch() {
		t.Fatalf("cursor announces %d entries at epoch %x, want 300 at %x", h.Count, h.Epoch, st.Epoch())
	}
	var got []byte
	for {
		n := len(got)
		if got = h.Next(got, 7); len(got) == n {
			break
		}
	}
	if !bytes.HasSuffix(whole, got) || len(got) != 300*HeldEntryLen {
		t.Fatalf("streamed %d bytes, not the whole list's %d entries", len(got), 300)
	}
	x := NewPeerIndex(0)
	if n := loadCursor(t, x, st.HeldFor(x.Epoch(), x.Mark()), 50); n != 300 || x.Len() != 300 || x.Epoch() != st.Epoch() {
		t.Fatalf("loaded %d entries, index holds %d at epoch %x", n, x.Len(), x.Epoch())
	}
	if h := st.HeldFor(x.Epoch(), x.Mark()); h.Count != 0 {
		t.Fatalf("an up-to-date index is offered %d entries", h.Count)
	}
}

// TestPrimeIsLearntIncrementally: priming raises the store's mark, and a
// peer index that knew the store learns only the containers the pass
// wrote, not the whole store again, then sends the primed image as
// references.
func TestPrimeIsLearntIncrementally(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{Dir: dir, MaxBytes: 32 << 20}
	st := openTestStore(t, cfg)
	putChain(st, chunkSeq(2, 500, 8<<10)) // what the store held before
	e, _ := NewEncoder(EncoderConfig{})
	if n := loadCursor(t, e.Peer(), st.HeldFor(0, 0), 1000); n != 500 {
		t.Fatalf("first list: %d entries, want 500", n)
	}
	epoch := st.Epoch()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := openTestStore(t, cfg) // aimwan proxy prime
	img := newImageGen(7).template(1 << 20)
	ps, err := Prime(context.Background(), st2, bytes.NewReader(img), Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	st3 := openTestStore(t, cfg) // the proxy restarts
	if st3.Epoch() != epoch {
		t.Fatal("priming changed the epoch: the peer would learn the whole store again")
	}
	h := st3.HeldFor(e.Peer().Epoch(), e.Peer().Mark())
	if h.Count < int64(ps.Chunks) || h.Count > int64(ps.Chunks)+100 {
		t.Fatalf("after priming %d chunks the peer is offered %d entries (store: %d)", ps.Chunks, h.Count,
			st3.Stats().Chunks)
	}
	loadCursor(t, e.Peer(), h, 64)
	if e.Peer().Mark() != 1 {
		t.Fatalf("peer index at mark %d, want 1", e.Peer().Mark())
	}
	d, _ := NewDecoder(DecoderConfig{Store: st3})
	pr := &pair{enc: e, dec: d, store: st3}
	if s, wire := pr.send(t, img); s.Literals != 0 || wire > 1000 {
		t.Fatalf("primed image cost %d wire bytes: %+v", wire, s)
	}
	if h := st3.HeldFor(e.Peer().Epoch(), e.Peer().Mark()); h.Count != 0 {
		t.Fatalf("an up-to-date index is offered %d entries", h.Count)
	}
}

// TestHeldAfterManyPrimes: a peer index that missed more priming passes
// than the store keeps on record gets the whole list, without being
// emptied (same epoch).
func TestHeldAfterManyPrimes(t *testing.T) {
	st := openTestStore(t, StoreConfig{MaxBytes: 16 << 20}) // 1 MiB containers
	x := NewPeerIndex(0)
	loadCursor(t, x, st.HeldFor(0, 0), 100)
	for i := range maxPrimeRanges + 1 {
		if _, err := Prime(context.Background(), st, bytes.NewReader(chunkSeq(10+i, 1, 300<<10)[0]), Params{}); err != nil {
			t.Fatal(err)
		}
	}
	all := int64(st.Stats().Chunks)
	if h := st.HeldFor(x.Epoch(), x.Mark()); h.Count != all {
		t.Fatalf("%d passes missed: offered %d entries, want all %d", maxPrimeRanges+1, h.Count, all)
	}
	if h := st.HeldFor(x.Epoch(), 20); h.Count*2 > all || h.Count == 0 {
		t.Fatalf("%d passes missed: offered %d of %d entries", maxPrimeRanges+1-20, h.Count, all)
	}
}

// TestInterruptedHeldListIsAskedAgain: an index emptied for a new epoch
// stays at epoch 0 until the list is complete, so a source edge killed
// while loading asks for the whole list again.
func TestInterruptedHeldListIsAskedAgain(t *testing.T) {
	dir := t.TempDir()
	st := openTestStore(t, StoreConfig{MaxBytes: 16 << 20})
	putChain(st, chunkSeq(3, 200, 8<<10))
	own := openTestStore(t, StoreConfig{Dir: dir, MaxBytes: 16 << 20})
	x, err := own.PeerIndex()
	if err != nil {
		t.Fatal(err)
	}
	x.SetEpoch(12345) // it described another generation
	x.addLocked(99, 8192)
	h := st.HeldFor(x.Epoch(), x.Mark())
	if !x.BeginHeld(h.Epoch) || x.Len() != 0 || x.Epoch() != 0 {
		t.Fatalf("index at another epoch not emptied: %d chunks, epoch %x", x.Len(), x.Epoch())
	}
	if err := x.AddHeld(h.Next(nil, 10)); err != nil {
		t.Fatal(err)
	}
	if err := own.Close(); err != nil { // killed before the list ended
		t.Fatal(err)
	}
	own = openTestStore(t, StoreConfig{Dir: dir, MaxBytes: 16 << 20})
	if x, _ = own.PeerIndex(); x.Epoch() != 0 {
		t.Fatalf("an index with part of a list has epoch %x: it would not ask for the rest", x.Epoch())
	}
	if h := st.HeldFor(x.Epoch(), x.Mark()); h.Count != 200 {
		t.Fatalf("offered %d entries, want the whole list", h.Count)
	}
}

// TestAddHeldRejectsMalformed: a piece that is not whole entries, or an
// entry with a zero fingerprint, is ErrCorrupt.
func TestAddHeldRejectsMalformed(t *testing.T) {
	x := NewPeerIndex(100)
	for _, b := range [][]byte{make([]byte, 15), make([]byte, 16)} {
		if err := x.AddHeld(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("AddHeld(%d bytes): %v, want ErrCorrupt", len(b), err)
		}
	}
}

// TestHeldListLinksAreImplicit: a stream learnt from a held list costs no
// explicit link entries (each chunk's successor is the next entry), and
// its chain is whole: the run a clone is sent as resolves.
func TestHeldListLinksAreImplicit(t *testing.T) {
	st := openTestStore(t, StoreConfig{MaxBytes: 16 << 20})
	fps := putChain(st, chunkSeq(5, 400, 8<<10))
	x := NewPeerIndex(0)
	loadCursor(t, x, st.HeldFor(0, 0), 33)
	links := 0
	x.st.mu.Lock()
	for _, id := range x.st.ids {
		links += len(x.st.tabLocked(id).links)
	}
	if x.st.open != nil {
		links += len(x.st.open.links)
	}
	x.st.mu.Unlock()
	if links != 0 {
		t.Errorf("%d explicit link entries for a stream of 400 chunks", links)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := 0; i+1 < len(fps); i++ {
		if got := x.succLocked(fps[i].short()); got != fps[i+1].short() {
			t.Fatalf("successor of chunk %d: %x, want %x", i, got, fps[i+1].short())
		}
	}
}
