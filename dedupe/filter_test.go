package dedupe

import (
	"testing"
)

// TestAbsentFilter: keys added are always "maybe"; most others are "no";
// a generation's keys leave once all its containers are evicted.
func TestAbsentFilter(t *testing.T) {
	f := newAbsentFilter(16, 1000)
	f.ready = true
	key := func(i int) uint64 { return tableKey(kindChunk, Sum(binaryKey(uint64(i))).short()) }
	for i := range 4000 { // containers 2..5, 1000 keys each
		f.add(uint32(2+i/1000), key(i))
	}
	for i := range 4000 {
		if !f.mayHave(key(i)) {
			t.Fatalf("key %d added but filtered out", i)
		}
	}
	fp := 0
	for i := 4000; i < 14000; i++ {
		if f.mayHave(key(i)) {
			fp++
		}
	}
	if fp > 500 { // ~3% expected
		t.Errorf("%d false positives in 10000", fp)
	}
	if len(f.gens) != 2 || f.span != 2 {
		t.Fatalf("%d generations of %d containers, want 2 of 2", len(f.gens), f.span)
	}
	f.forget(4) // containers 2 and 3 evicted
	if len(f.gens) != 1 || !f.mayHave(key(3500)) {
		t.Fatal("forgetting containers 2-3 lost the generation of 4-5")
	}
	gone := 0
	for i := range 2000 {
		if !f.mayHave(key(i)) {
			gone++
		}
	}
	if gone < 1800 {
		t.Errorf("only %d of 2000 keys of evicted containers left the filter", gone)
	}
	if f2 := newAbsentFilter(16, 1000); f2.mayHave(key(99999)) != true {
		t.Error("a filter not yet filled must answer maybe")
	}
}

// TestFilterSkipsTableReads: in a store in a folder, a lookup of a chunk
// never stored reads no table bucket once the filter is filled (at open,
// in the background), and a reopened store still finds every chunk.
func TestFilterSkipsTableReads(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{Dir: dir, MaxBytes: 64 << 20}
	st := openTestStore(t, cfg)
	chunks := chunkSeq(8, 600, 8<<10)
	fps := putChain(st, chunks)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openTestStore(t, cfg)
	st.mu.Lock()
	filling := st.filling
	st.mu.Unlock()
	if filling == nil {
		t.Fatal("a store holding containers started no filter fill")
	}
	<-filling
	before := st.Stats().TableReads
	misses := 0
	for i := range 2000 {
		if st.Has(Sum(binaryKey(uint64(1_000_000 + i)))) {
			t.Fatal("a chunk never stored is found")
		}
	}
	reads := st.Stats().TableReads - before
	if reads > 200 {
		t.Errorf("%d table reads for 2000 absent chunks, want few (false positives only)", reads)
	}
	checkChain(t, st, chunks, fps)
	_ = misses
	if st.Stats().IndexRAMBytes == 0 {
		t.Error("the filter's memory is not counted")
	}
}
