package dedupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Fuzz targets of every parser of a store's on-disk state: container
// files (data, table, trailer), the meta file, the fingerprint table's
// header and buckets, whole store and peer-index folders, and held lists.
// A corrupt or hostile file gives an error, or is rebuilt or dropped as a
// cache may; never a panic, an allocation larger than the file, or a chunk
// whose bytes are not the ones asked for. Seeds: testdata/fuzz/<target>
// (AIMWAN_WRITE_SEEDS=1 go test -run TestWriteStoreFuzzSeeds rewrites them).

// fuzzContainer is a valid container file: two chunks (the second follows
// the first) and one explicit link.
func fuzzContainer() ([]byte, [][]byte) {
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	c := &container{id: 1, data: data}
	c.chunks = []chunkEntry{{fp: Sum(data[:10]), n: 10}, {fp: Sum(data[10:]), off: 10, n: uint32(len(data) - 10), flags: flagFollows}}
	c.links = []linkEntry{{a: c.chunks[1].fp, b: c.chunks[0].fp, kind: kindSucc}}
	return c.encode(), [][]byte{data[:10], data[10:]}
}

// fuzzPeerContainer is a valid container file of a peer index (no data).
func fuzzPeerContainer() []byte {
	c := &container{id: 1}
	c.chunks = []chunkEntry{{fp: padded(7), n: 8192}, {fp: padded(9), n: 8192, flags: flagFollows}}
	return c.encode()
}

// fuzzStoreFolder is a valid store folder's files after storing a few
// chunks: meta, index and first container.
func fuzzStoreFolder(t testing.TB, dataless bool) (meta, index, cont []byte) {
	dir := t.TempDir()
	st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 1 << 20, dataless: dataless})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chunkSeq(4, 4, 300) {
		fp := Sum(c)
		if dataless {
			fp, c = padded(uint64(i+1)), nil
		}
		st.add(fp, c, 1000)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The table's empty buckets trimmed: a short table file is rebuilt.
	return read(storeMetaFile), bytes.TrimRight(read(storeTableFile), "\x00"),
		read(filepath.Join(storeContainerDir, "0000000001"+containerExt))
}

func storeFuzzSeeds(t testing.TB) map[string][][]any {
	cont, _ := fuzzContainer()
	m, x, c := fuzzStoreFolder(t, false)
	pm, px, pc := fuzzStoreFolder(t, true)
	held, err := fuzzHeldList()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][][]any{
		"FuzzContainerFile": {{cont}, {fuzzPeerContainer()}, {c}, {cont[:len(cont)-1]}},
		"FuzzStoreMeta": {{storeMeta{epoch: 42}.append(nil)}, {m}, {pm},
			{storeMeta{epoch: 7, capacity: 1 << 30, mark: 3, primes: []primeRange{{1, 2}, {2, 5}}}.append(nil)}},
		"FuzzTableHeader": {{tableHeader{buckets: 64, synced: 7}.encode()}, {x[:32]}},
		"FuzzStoreFolder": {{m, x, c, false}, {pm, px, pc, true}, {m, x[:tableHeaderBytes/2], c[:len(c)/2], false},
			{pm, x, c, false}, {m, px, pc, true}},
		"FuzzLoadHeld": {{held}},
	}
}

func fuzzHeldList() ([]byte, error) {
	st, err := OpenStore(StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		return nil, err
	}
	if _, err := Prime(context.Background(), st, bytes.NewReader(fuzzHistory()), Params{}); err != nil {
		return nil, err
	}
	return st.AppendHeld(nil), nil
}

// TestWriteStoreFuzzSeeds regenerates the seed corpus of the store's fuzz
// targets when AIMWAN_WRITE_SEEDS=1.
func TestWriteStoreFuzzSeeds(t *testing.T) {
	if os.Getenv("AIMWAN_WRITE_SEEDS") != "1" {
		t.Skip("set AIMWAN_WRITE_SEEDS=1 to rewrite the store fuzz corpus seeds")
	}
	for name, seeds := range storeFuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range seeds {
			body := "go test fuzz v1\n"
			for _, a := range args {
				switch v := a.(type) {
				case []byte:
					body += fmt.Sprintf("[]byte(%q)\n", v)
				case bool:
					body += fmt.Sprintf("bool(%v)\n", v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzContainerFile: a container file that parses is exactly what its
// table describes (it re-encodes to the same bytes), every chunk inside
// its data region; the parser allocates no more than the file's size.
func FuzzContainerFile(f *testing.F) {
	cont, _ := fuzzContainer()
	f.Add(cont)
	f.Fuzz(func(t *testing.T, b []byte) {
		files := &memFiles{m: map[uint32][]byte{1: b}}
		c, err := readContainer(files, 1, int64(len(b)))
		if err != nil {
			if !errors.Is(err, errContainer) {
				t.Fatalf("error %v does not wrap errContainer", err)
			}
			return
		}
		if c.size != int64(len(b)) {
			t.Fatalf("parsed size %d of a %d-byte file", c.size, len(b))
		}
		dataLen := int64(len(b)) - int64(len(c.chunks)*chunkEntryLen+len(c.links)*linkEntryLen+trailerLen)
		for _, e := range c.chunks {
			if (dataLen > 0 && int64(e.off)+int64(e.n) > dataLen) || e.n > MaxChunkLimit {
				t.Fatalf("chunk [%d,+%d) outside %d data bytes", e.off, e.n, dataLen)
			}
		}
		if again := c.appendTable(append([]byte(nil), b[:dataLen]...), int(dataLen)); !bytes.Equal(again, b) {
			t.Fatal("a parsed container does not re-encode to its bytes")
		}
	})
}

// FuzzStoreMeta: a meta file that parses re-encodes to the same meta and
// has sane prime ranges.
func FuzzStoreMeta(f *testing.F) {
	f.Add(storeMeta{epoch: 42}.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(m.primes) > maxPrimeRanges || uint64(len(m.primes)) > m.mark {
			t.Fatalf("%d prime ranges at mark %d", len(m.primes), m.mark)
		}
		again, err := parseMeta(m.append(nil))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("a parsed meta file re-encodes to %+v (%v), want %+v", again, err, m)
		}
	})
}

// FuzzTableHeader: a table header that parses has a power-of-two bucket
// count within bounds.
func FuzzTableHeader(f *testing.F) {
	f.Add(tableHeader{buckets: 64, synced: 7}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseTableHeader(b)
		if err != nil {
			return
		}
		if h.buckets == 0 || h.buckets&(h.buckets-1) != 0 || h.buckets > 1<<32 {
			t.Fatalf("accepted %d buckets", h.buckets)
		}
		if !bytes.Equal(h.encode(), b[:24]) {
			t.Fatal("a parsed header does not re-encode to its bytes")
		}
	})
}

// FuzzStoreFolder opens a store (or a peer index: dataless) whose meta
// file, fingerprint table and first container are the fuzzed bytes, beside
// a second, valid container. The open fails with ErrStoreLoad or
// succeeds; then the valid container's chunks read back as their own
// bytes or miss, lookups of anything do not panic, and the store takes
// and returns new chunks.
func FuzzStoreFolder(f *testing.F) {
	m, x, c := fuzzStoreFolder(f, false)
	f.Add(m, x, c, false)
	f.Fuzz(func(t *testing.T, meta, index, cont []byte, dataless bool) {
		dir := t.TempDir()
		cdir := filepath.Join(dir, storeContainerDir)
		good, chunks := fuzzContainer()
		if dataless {
			good = fuzzPeerContainer()
		}
		for name, b := range map[string][]byte{storeMetaFile: meta, storeTableFile: index,
			filepath.Join(storeContainerDir, "0000000001"+containerExt): cont,
			filepath.Join(storeContainerDir, "0000000002"+containerExt): good} {
			if err := os.MkdirAll(cdir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: 1 << 20, dataless: dataless})
		if err != nil {
			if !errors.Is(err, ErrStoreLoad) {
				t.Fatalf("open: %v does not wrap ErrStoreLoad", err)
			}
			return
		}
		defer st.Close()
		for _, ch := range chunks {
			if got, ok := st.Get(nil, Sum(ch)); ok && !bytes.Equal(got, ch) {
				t.Fatal("Get returned other bytes than the chunk's")
			}
			st.Successor(Sum(ch))
			st.Predecessor(Sum(ch))
		}
		st.Has(padded(7))
		st.Successor(padded(7))
		_ = st.AppendHeld(nil)
		fresh := []byte("a chunk stored after the open")
		st.add(Sum(fresh), fresh, len(fresh))
		if got, ok := st.Get(nil, Sum(fresh)); !dataless && (!ok || !bytes.Equal(got, fresh)) {
			t.Fatal("the store lost a chunk stored after the open")
		}
	})
}

// FuzzLoadHeld: a hostile held list is an error or a few entries, never a
// panic or an allocation beyond its size.
func FuzzLoadHeld(f *testing.F) {
	held, err := fuzzHeldList()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(held)
	f.Fuzz(func(t *testing.T, b []byte) {
		x := NewPeerIndex(100)
		if err := x.LoadHeld(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		if x.Len() > len(b)/HeldEntryLen {
			t.Fatalf("%d chunks from a %d-byte list", x.Len(), len(b))
		}
	})
}
