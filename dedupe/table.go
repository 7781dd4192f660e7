package dedupe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
)

// The fingerprint table is the store's full index: a hash table of 8-byte
// keys (a short fingerprint, salted by entry kind) and 8-byte locations
// (container, kind, index), in buckets of tableSlots entries. A store in a
// folder keeps it in a file and reads one bucket per lookup with pread, so
// its size costs disk and page cache, never resident memory; a memory-only
// store keeps its buckets in RAM, allocated when first written.
//
// The table is a hint like everything in the store: an entry may be stale
// (its container was evicted), torn by a power loss or missing; lookups
// check every candidate against the container's own table of fingerprints.
const (
	tableSlots       = 64
	tableEntry       = 16
	tableBucket      = tableSlots * tableEntry // 1 KiB
	tableHeaderBytes = 4096
	tableVersion     = 1
)

var magicTable = [4]byte{'A', 'I', 'M', 'X'}

// errTableHeader reports a table file whose header is missing, torn or of
// another layout: the store rebuilds it from the containers.
var errTableHeader = errors.New("fingerprint table header invalid")

// tableHeader is the persisted state of the table file.
type tableHeader struct {
	buckets uint64
	// synced is the newest container whose entries were all in the table
	// when the table was last fsynced; containers after it are re-indexed
	// at start-up.
	synced uint32
}

func (h tableHeader) encode() []byte {
	b := make([]byte, 0, 32)
	b = append(b, magicTable[:]...)
	b = append(b, tableVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, h.buckets)
	b = binary.BigEndian.AppendUint32(b, h.synced)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func parseTableHeader(b []byte) (tableHeader, error) {
	var h tableHeader
	if len(b) < 24 || [4]byte(b[:4]) != magicTable || b[4] != tableVersion {
		return h, errTableHeader
	}
	if crc32.Checksum(b[:20], castagnoli) != binary.BigEndian.Uint32(b[20:24]) {
		return h, errTableHeader
	}
	h.buckets = binary.BigEndian.Uint64(b[8:16])
	h.synced = binary.BigEndian.Uint32(b[16:20])
	if h.buckets == 0 || h.buckets&(h.buckets-1) != 0 || h.buckets > 1<<32 {
		return h, fmt.Errorf("%w: %d buckets", errTableHeader, h.buckets)
	}
	return h, nil
}

// tableBuckets is the bucket count for a store of capacity bytes: about
// one entry per average chunk plus a tenth for links, at most 40 of 64
// slots used.
func tableBuckets(capacity int64) uint64 {
	entries := uint64(capacity/DefaultAvgSize) * 11 / 10
	n := max(entries/40, 64)
	return 1 << bits.Len64(n-1)
}

// table is the fingerprint table. Not safe for concurrent use: the store's
// lock guards it.
type table struct {
	f       *os.File             // nil for a memory-only table
	mem     []*[tableBucket]byte // memory-only: buckets, nil until written
	buckets uint64
	buf     [tableBucket]byte
	reads   uint64 // buckets read from the file
}

func newMemTable(buckets uint64) *table {
	return &table{buckets: buckets, mem: make([]*[tableBucket]byte, buckets)}
}

// openFileTable opens the table file at path for a store of the given
// bucket count. When the file's header is unreadable or of another size
// the file is reset to empty and rebuild is true: the caller re-indexes
// every container. Otherwise synced is the header's.
func openFileTable(path string, buckets uint64) (t *table, h tableHeader, rebuild bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, h, false, err
	}
	t = &table{f: f, buckets: buckets}
	hb := make([]byte, 32)
	if _, rerr := f.ReadAt(hb, 0); rerr == nil || errors.Is(rerr, io.EOF) {
		h, err = parseTableHeader(hb)
	}
	if err == nil && h.buckets == buckets {
		// A file shorter than its buckets (truncated, copied without its
		// holes) is rebuilt too: reads past its end would find nothing.
		if info, serr := f.Stat(); serr == nil && info.Size() >= tableHeaderBytes+int64(buckets)*tableBucket {
			return t, h, false, nil
		}
	}
	if err := t.reset(); err != nil {
		f.Close()
		return nil, h, false, err
	}
	return t, tableHeader{buckets: buckets}, true, nil
}

// reset empties the table (a sparse file of zeros).
func (t *table) reset() error {
	if t.f == nil {
		clear(t.mem)
		return nil
	}
	if err := t.f.Truncate(0); err != nil {
		return err
	}
	if err := t.f.Truncate(tableHeaderBytes + int64(t.buckets)*tableBucket); err != nil {
		return err
	}
	return t.writeHeader(tableHeader{buckets: t.buckets})
}

func (t *table) writeHeader(h tableHeader) error {
	if t.f == nil {
		return nil
	}
	_, err := t.f.WriteAt(h.encode(), 0)
	return err
}

// sync flushes the table file.
func (t *table) sync() error {
	if t.f == nil {
		return nil
	}
	return t.f.Sync()
}

func (t *table) close() error {
	if t.f == nil {
		return nil
	}
	return t.f.Close()
}

// bucket returns the bucket of key, read into t.buf (file) or in place
// (memory; nil when never written).
func (t *table) bucket(key uint64) (*[tableBucket]byte, uint64, error) {
	i := key & (t.buckets - 1)
	if t.f == nil {
		return t.mem[i], i, nil
	}
	t.reads++
	if _, err := t.f.ReadAt(t.buf[:], tableHeaderBytes+int64(i)*tableBucket); err != nil {
		return nil, i, err
	}
	return &t.buf, i, nil
}

// lookup appends to dst the values stored under key.
func (t *table) lookup(dst []uint64, key uint64) []uint64 {
	b, _, err := t.bucket(key)
	if err != nil || b == nil {
		return dst
	}
	for s := 0; s < tableSlots; s++ {
		k := binary.LittleEndian.Uint64(b[s*tableEntry:])
		if k == key {
			dst = append(dst, binary.LittleEndian.Uint64(b[s*tableEntry+8:]))
		} else if k == 0 {
			break // slots fill from the front
		}
	}
	return dst
}

// insert adds key -> val unless that exact entry is present. A full bucket
// gives up the slot of a dead entry (live says which values still point
// into the store), else the one with the oldest container.
func (t *table) insert(key, val uint64, live func(uint64) bool) error {
	b, i, err := t.bucket(key)
	if err != nil {
		return err
	}
	if b == nil { // memory table, first write to this bucket
		b = new([tableBucket]byte)
		t.mem[i] = b
	}
	empty, victim := -1, -1 // first empty slot; dead or oldest live entry
	var victimVal uint64
	for s := 0; s < tableSlots && empty < 0; s++ {
		k := binary.LittleEndian.Uint64(b[s*tableEntry:])
		v := binary.LittleEndian.Uint64(b[s*tableEntry+8:])
		switch {
		case k == 0:
			empty = s
		case k == key && v == val:
			return nil
		case victim >= 0 && !live(victimVal):
			// already have a dead slot
		case victim < 0 || !live(v) || v>>32 < victimVal>>32:
			victim, victimVal = s, v
		}
	}
	slot := victim
	if slot < 0 || (empty >= 0 && live(victimVal)) {
		slot = empty
	}
	binary.LittleEndian.PutUint64(b[slot*tableEntry:], key)
	binary.LittleEndian.PutUint64(b[slot*tableEntry+8:], val)
	if t.f == nil {
		return nil
	}
	_, err = t.f.WriteAt(b[:], tableHeaderBytes+int64(i)*tableBucket)
	return err
}

// Entry kinds: the key of a link entry is its chunk's short fingerprint
// salted by the kind, so chunk and link entries share the table.
const (
	kindChunk = 0
	kindSucc  = 1 // link entry: succ(a) = b
	kindPred  = 2 // link entry: pred(a) = b
)

var kindSalt = [3]uint64{0, 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F}

func tableKey(kind uint8, short uint64) uint64 {
	k := short ^ kindSalt[kind]
	if k == 0 {
		k = 1
	}
	return k
}

// loc is where an entry sits: container id, kind (chunk or link) and its
// index in that container's chunk or link list.
type loc struct {
	c    uint32
	kind uint8
	i    uint32
}

func (l loc) pack() uint64 { return uint64(l.c)<<32 | uint64(l.kind)<<24 | uint64(l.i&0xFFFFFF) }

func unpackLoc(v uint64) loc {
	return loc{c: uint32(v >> 32), kind: uint8(v >> 24), i: uint32(v & 0xFFFFFF)}
}
