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

func openTestStore(t testing.TB, cfg StoreConfig) *Store {
	t.Helper()
	st, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestStoreGetVerifies(t *testing.T) {
	st := openTestStore(t, StoreConfig{})
	data := []byte("chunk bytes")
	fp := Sum(data)
	st.Put(fp, data)
	got, ok := st.Get(nil, fp)
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	// Bytes that do not match their fingerprint are dropped, not returned.
	st.open.data[0] ^= 1
	if _, ok := st.Get(nil, fp); ok {
		t.Fatal("Get returned bytes that do not match the fingerprint")
	}
	if st.Has(fp) || st.Stats().Corrupt != 1 {
		t.Fatalf("corrupt entry kept: %+v", st.Stats())
	}
	st.Put(fp, data) // stored again
	if got, ok := st.Get(nil, fp); !ok || !bytes.Equal(got, data) {
		t.Fatalf("Get after Put again = %q, %v", got, ok)
	}
	// Successors are set once, also for chunks the store does not hold.
	a, b, c := Sum([]byte("a")), Sum([]byte("b")), Sum([]byte("c"))
	st.Link(a, b)
	st.Link(a, c)
	if s, ok := st.Successor(a); !ok || s != b {
		t.Fatalf("Successor(a) = %v, %v; want b", s, ok)
	}
	if p, ok := st.Predecessor(c); !ok || p != a {
		t.Fatalf("Predecessor(c) = %v, %v; want a", p, ok)
	}
}

// chunkSeq returns n distinct chunks of size bytes.
func chunkSeq(seed, n, size int) [][]byte {
	g := newImageGen(uint64(seed))
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
		g.random(out[i])
	}
	return out
}

// putChain stores chunks in order, linked as a stream.
func putChain(st *Store, chunks [][]byte) []Fingerprint {
	fps := make([]Fingerprint, len(chunks))
	for i, c := range chunks {
		fps[i] = Sum(c)
		st.Put(fps[i], c)
		if i > 0 {
			st.Link(fps[i-1], fps[i])
		}
	}
	return fps
}

func checkChain(t *testing.T, st *Store, chunks [][]byte, fps []Fingerprint) {
	t.Helper()
	for i, fp := range fps {
		if got, ok := st.Get(nil, fp); !ok || !bytes.Equal(got, chunks[i]) {
			t.Fatalf("chunk %d of %d: Get ok=%v", i, len(fps), ok)
		}
		if i > 0 {
			if s, ok := st.Successor(fps[i-1]); !ok || s != fp {
				t.Fatalf("Successor of chunk %d: %v, %v", i-1, s, ok)
			}
			if p, ok := st.Predecessor(fp); !ok || p != fps[i-1] {
				t.Fatalf("Predecessor of chunk %d: %v, %v", i, p, ok)
			}
		}
	}
}

// TestStoreLinksAcrossContainers: a stream spanning many containers keeps
// its successor links (implicit, by position) across container boundaries,
// in memory, on disk and after a restart.
func TestStoreLinksAcrossContainers(t *testing.T) {
	chunks := chunkSeq(1, 600, 5000) // 3 MB in 64 KiB containers
	for _, dir := range []string{"", t.TempDir()} {
		cfg := StoreConfig{Dir: dir, MaxBytes: 16 << 20, CacheEntries: 64}
		st, err := OpenStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st.containerBytes = 64 << 10
		fps := putChain(st, chunks)
		if n := st.Stats().Containers; n < 40 {
			t.Fatalf("%d containers, want many", n)
		}
		checkChain(t, st, chunks, fps)
		if st := st.Stats(); st.ContainerReads == 0 {
			t.Fatalf("no container table was read back with a cache of 64 entries: %+v", st)
		}
		if dir == "" {
			continue
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st2 := openTestStore(t, cfg)
		if s := st2.Stats(); s.RebuildReads != 0 || s.Chunks != len(chunks) {
			t.Fatalf("clean restart re-read %d containers, holds %d chunks", s.RebuildReads, s.Chunks)
		}
		checkChain(t, st2, chunks, fps)
	}
}

func TestStoreEvictsOldestContainers(t *testing.T) {
	st := openTestStore(t, StoreConfig{MaxBytes: 4 << 20})
	chunks := chunkSeq(2, 2000, 8000) // 16 MB into 4 MiB
	fps := putChain(st, chunks)
	s := st.Stats()
	if s.Bytes > 4<<20 || s.EvictedContainers == 0 || s.EvictedBytes < 10<<20 {
		t.Fatalf("after 16 MB into 4 MiB: %+v", s)
	}
	if st.Has(fps[0]) || !st.Has(fps[len(fps)-1]) {
		t.Fatal("eviction did not drop the oldest chunks first")
	}
	// What is left still links up.
	k := len(fps) - s.Chunks + 10
	checkChain(t, st, chunks[k:], fps[k:])
}

func TestStorePersist(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{Dir: dir, MaxBytes: 32 << 20}
	st := openTestStore(t, cfg)
	img := newImageGen(6).template(2 << 20)
	ps, err := Prime(context.Background(), st, bytes.NewReader(img), Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	epoch, held := st.Epoch(), st.AppendHeld(nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openTestStore(t, cfg)
	if st2.Epoch() != epoch || st2.Stats().Chunks != ps.Chunks {
		t.Fatalf("reloaded epoch %x chunks %d, want %x %d", st2.Epoch(), st2.Stats().Chunks, epoch, ps.Chunks)
	}
	if !bytes.Equal(st2.AppendHeld(nil), held) {
		t.Fatal("held list changed across close/open")
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
}

// TestStoreDamage: a cache recovers from what it can and reports what it
// cannot use.
func TestStoreDamage(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{Dir: dir, MaxBytes: 16 << 20}
	st := openTestStore(t, cfg)
	st.containerBytes = 64 << 10
	chunks := chunkSeq(3, 100, 5000)
	fps := putChain(st, chunks)
	// A second process must not share the folder.
	if _, err := OpenStore(cfg); !errors.Is(err, ErrStoreBusy) {
		t.Fatalf("second open of a store in use: %v, want ErrStoreBusy", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn index is rebuilt from the containers.
	if err := os.WriteFile(filepath.Join(dir, storeTableFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	st2 := openTestStore(t, cfg)
	if st2.Stats().RebuildReads == 0 {
		t.Fatal("index not rebuilt")
	}
	checkChain(t, st2, chunks, fps)
	// A damaged container is dropped, the others stay.
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, storeContainerDir))
	first := filepath.Join(dir, storeContainerDir, ents[0].Name())
	if err := os.Truncate(first, 100); err != nil {
		t.Fatal(err)
	}
	st3 := openTestStore(t, cfg)
	if st3.Has(fps[0]) || !st3.Has(fps[len(fps)-1]) {
		t.Fatal("damaged container not dropped, or the others lost")
	}
	if err := st3.Close(); err != nil {
		t.Fatal(err)
	}
	// A meta file it cannot read is reported, not silently replaced.
	if err := os.WriteFile(filepath.Join(dir, storeMetaFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(cfg); !errors.Is(err, ErrStoreLoad) {
		t.Fatalf("open damaged store: %v, want ErrStoreLoad", err)
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
	if !st.Has(Sum([]byte("x"))) {
		t.Fatal("store unusable after Serve returned")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openTestStore(t, StoreConfig{Dir: dir, MaxBytes: 32 << 20})
	if !st2.Has(Sum([]byte("x"))) {
		t.Fatal("chunk lost across Serve's final save")
	}
}

func TestStoreDefaultCapacity(t *testing.T) {
	n, err := defaultDiskBytes(filepath.Join(t.TempDir(), "not", "yet"))
	if err != nil || n <= 0 || n > DefaultDiskStoreBytes {
		t.Fatalf("default capacity %d, %v", n, err)
	}
	st := openTestStore(t, StoreConfig{Dir: t.TempDir()})
	if c := st.Stats().Capacity; c != uint64(min(n, DefaultDiskStoreBytes)) && c > DefaultDiskStoreBytes {
		t.Fatalf("capacity %d", c)
	}
}

func TestWipeChangesEpoch(t *testing.T) {
	st := openTestStore(t, StoreConfig{})
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
	chunk := make([]byte, DefaultAvgSize)
	for i := uint64(1); i <= 200; i++ {
		x.put(Sum(binaryKey(i)), chunk)
	}
	if n := x.Len(); n > 100 || n < 50 {
		t.Fatalf("index holds %d, want 50..100", n)
	}
	x.mu.Lock()
	newest := x.knownLocked(Sum(binaryKey(200)).short())
	oldest := x.knownLocked(Sum(binaryKey(1)).short())
	x.mu.Unlock()
	if !newest || oldest {
		t.Fatalf("newest known %v, oldest known %v", newest, oldest)
	}
}

// TestPeerIndexPersists: the index kept beside a store in a folder keeps
// its epoch and content across a restart, so the sender needs no held list
// from a peer that did not restart.
func TestPeerIndexPersists(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{Dir: dir, MaxBytes: 32 << 20}
	st := openTestStore(t, cfg)
	x, err := st.PeerIndex()
	if err != nil {
		t.Fatal(err)
	}
	x.SetEpoch(77)
	img := newImageGen(9).template(1 << 20)
	if _, err := PrimePeer(context.Background(), x, bytes.NewReader(img), Params{}); err != nil {
		t.Fatal(err)
	}
	n := x.Len()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openTestStore(t, cfg)
	x2, err := st2.PeerIndex()
	if err != nil {
		t.Fatal(err)
	}
	if x2.Epoch() != 77 || x2.Len() != n {
		t.Fatalf("reopened index: epoch %d, %d chunks; want 77, %d", x2.Epoch(), x2.Len(), n)
	}
	e, _ := NewEncoder(EncoderConfig{Peer: x2})
	if _, es, err := e.Encode(nil, img); err != nil || es.Literals != 0 {
		t.Fatalf("image known to the reopened index encoded as %+v, %v", es, err)
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
	var calls int
	st, err := PrimeWith(context.Background(), x, bytes.NewReader(img), PrimeOptions{
		Progress: func(PrimeStats) { calls++ }})
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
	if calls < 3 {
		t.Fatalf("progress reported %d times for 20 MiB", calls)
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
