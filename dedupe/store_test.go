package dedupe

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStoreGetVerifies(t *testing.T) {
	st, err := OpenStore(StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("chunk bytes")
	fp := Sum(data)
	st.Put(fp, data)
	got, ok := st.Get(nil, fp)
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	// An entry whose bytes do not match its key is dropped, not returned.
	var k [33]byte
	st.cache.Load().Set(chunkKey(&k, fp), []byte("corrupt"))
	if _, ok := st.Get(nil, fp); ok {
		t.Fatal("Get returned bytes that do not match the fingerprint")
	}
	if st.Has(fp) || st.Stats().Corrupt != 1 {
		t.Fatalf("corrupt entry kept: %+v", st.Stats())
	}
	// Successors are set once.
	a, b, c := Sum([]byte("a")), Sum([]byte("b")), Sum([]byte("c"))
	st.Link(a, b)
	st.Link(a, c)
	if s, ok := st.Successor(a); !ok || s != b {
		t.Fatalf("Successor(a) = %v, %v; want b", s, ok)
	}
}

func TestStorePersist(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	img := newImageGen(6).template(2 << 20)
	ps, err := Prime(context.Background(), st, bytes.NewReader(img), Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	epoch, held := st.Epoch(), st.AppendHeld(nil)

	st2, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if st2.Epoch() != epoch || st2.Stats().Chunks != ps.Chunks {
		t.Fatalf("reloaded epoch %x chunks %d, want %x %d", st2.Epoch(), st2.Stats().Chunks, epoch, ps.Chunks)
	}
	if !bytes.Equal(st2.AppendHeld(nil), held) {
		t.Fatal("held list changed across save/load")
	}
	// A clone of the primed image travels as references.
	e, _ := NewEncoder(EncoderConfig{})
	if err := e.Peer().LoadHeld(held); err != nil {
		t.Fatal(err)
	}
	d, _ := NewDecoder(DecoderConfig{Store: st2})
	pr := &pair{enc: e, dec: d, store: st2}
	s, wire := pr.send(t, img[:1<<20])
	if s.Literals != 0 || wire > 1000 {
		t.Fatalf("primed payload cost %d wire bytes: %+v", wire, s)
	}

	// A damaged saved store is reported, not silently empty.
	if err := os.WriteFile(filepath.Join(dir, storeIndexFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20}); !errors.Is(err, ErrStoreLoad) {
		t.Fatalf("open damaged store: %v, want ErrStoreLoad", err)
	}
	// So is one saved with another size.
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 64 << 20}); !errors.Is(err, ErrStoreLoad) {
		t.Fatalf("open store with another size: %v, want ErrStoreLoad", err)
	}
}

func TestStoreServeSavesOnCancel(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20, SaveInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st.Put(Sum([]byte("x")), []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Serve(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	st2, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Has(Sum([]byte("x"))) {
		t.Fatal("chunk lost across Serve's final save")
	}
}

func TestWipeChangesEpoch(t *testing.T) {
	st, _ := OpenStore(StoreConfig{})
	e0 := st.Epoch()
	st.Put(Sum([]byte("x")), []byte("x"))
	st.Wipe()
	if st.Epoch() == e0 || st.Has(Sum([]byte("x"))) || st.Stats().Chunks != 0 {
		t.Fatal("Wipe kept content or epoch")
	}
	x := NewPeerIndex(10)
	x.SetEpoch(e0)
	if !x.SetEpoch(st.Epoch()) {
		t.Fatal("peer index did not reset on a new epoch")
	}
}

func TestPeerIndexForgetsOldest(t *testing.T) {
	x := NewPeerIndex(100)
	for i := uint64(1); i <= 200; i++ {
		x.put(Sum(binaryKey(i)), nil)
	}
	if n := x.Len(); n > 100 || n < 50 {
		t.Fatalf("index holds %d, want 50..100", n)
	}
	x.mu.Lock()
	_, newest := x.lookupLocked(Sum(binaryKey(200)).short())
	_, oldest := x.lookupLocked(Sum(binaryKey(1)).short())
	x.mu.Unlock()
	if !newest || oldest {
		t.Fatalf("newest known %v, oldest known %v", newest, oldest)
	}
}

func binaryKey(i uint64) []byte {
	return []byte{byte(i), byte(i >> 8), byte(i >> 16)}
}

func TestPrimeMatchesEncode(t *testing.T) {
	// Priming in 8 MiB reads cuts the same chunks as encoding the image in
	// one piece, whatever the read boundaries hit (zeros included).
	g := newImageGen(11)
	img := g.template(20 << 20)
	clear(img[scanBuf-10000 : scanBuf+10000]) // a zero run across a read boundary
	clear(img[2*scanBuf-100 : 2*scanBuf])     // zeros right before one
	p, _ := Params{}.Normalize()
	want, _ := newSplitter(p).split(nil, img)
	x := NewPeerIndex(0)
	st, err := PrimePeer(context.Background(), x, bytes.NewReader(img), Params{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	for _, pc := range want {
		if !pc.zero {
			chunks++
		}
	}
	if st.Chunks != chunks || st.Bytes != int64(len(img)) {
		t.Fatalf("prime cut %d chunks of %d bytes, encode cuts %d of %d", st.Chunks, st.Bytes, chunks, len(img))
	}
	e, _ := NewEncoder(EncoderConfig{Peer: x})
	_, es, err := e.Encode(nil, img)
	if err != nil {
		t.Fatal(err)
	}
	if es.Literals != 0 || es.Runs > 10 {
		t.Fatalf("primed image re-encoded as %+v", es)
	}
}

// TestPrimeStartsNewEpoch: priming a store a peer already knows changes its
// epoch, so the peer's next handshake fetches the held list and the primed
// chunks travel as references. With the old epoch the peer index would keep
// describing the store as it was before priming.
func TestPrimeStartsNewEpoch(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st.Put(Sum([]byte("warm")), []byte("warm"))
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	e, _ := NewEncoder(EncoderConfig{})
	if err := e.Peer().LoadHeld(st.AppendHeld(nil)); err != nil { // the peer knows the warm store
		t.Fatal(err)
	}
	known := e.Peer().Epoch()

	st2, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20}) // aimwan proxy prime
	if err != nil {
		t.Fatal(err)
	}
	img := newImageGen(7).template(1 << 20)
	if _, err := Prime(context.Background(), st2, bytes.NewReader(img), Params{}); err != nil {
		t.Fatal(err)
	}
	if err := st2.Save(); err != nil {
		t.Fatal(err)
	}
	st3, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 32 << 20}) // the proxy restarts
	if err != nil {
		t.Fatal(err)
	}
	if st3.Epoch() == known {
		t.Fatalf("epoch %x unchanged by priming: the peer would never learn the primed chunks", known)
	}
	// The handshake rule: a peer at another epoch loads the held list.
	if !e.Peer().SetEpoch(st3.Epoch()) {
		t.Fatal("peer index did not reset on the new epoch")
	}
	if err := e.Peer().LoadHeld(st3.AppendHeld(nil)); err != nil {
		t.Fatal(err)
	}
	d, _ := NewDecoder(DecoderConfig{Store: st3})
	pr := &pair{enc: e, dec: d, store: st3}
	if s, wire := pr.send(t, img); s.Literals != 0 || wire > 1000 {
		t.Fatalf("primed image cost %d wire bytes: %+v", wire, s)
	}
}
