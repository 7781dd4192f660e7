package dedupe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/aimwan/aimwan/internal/durable"
)

// A container holds chunks in the order they arrived (stream locality, as in
// the Data Domain file system) and the explicit links recorded while it was
// open. On disk: the chunk bytes back to back, then the container's table
// (per chunk: fingerprint, offset, length, flags; per link: both
// fingerprints and the kind), then a fixed trailer. The table is what a
// lookup prefetches: one read gives the fingerprints of every chunk stored
// next to the one asked for.
const (
	containerMagicLen = 4
	chunkEntryLen     = 32 + 4 + 4 + 4
	linkEntryLen      = 32 + 32 + 4
	trailerLen        = 40
	containerVersion  = 1
	containerExt      = ".aimc"
	// flagFollows: this chunk is the successor of the chunk stored just
	// before it, and that chunk its predecessor (the common case of a
	// stream; no link entry needed).
	flagFollows = 1
	// flagDead: the chunk's bytes did not match its fingerprint (memory
	// only, never written).
	flagDead = 1 << 31
)

var magicContainer = [containerMagicLen]byte{'A', 'I', 'M', 'C'}

// errContainer reports a container file that is torn, truncated or foreign.
var errContainer = errors.New("container invalid")

type chunkEntry struct {
	fp    Fingerprint
	off   uint32
	n     uint32
	flags uint32
}

type linkEntry struct {
	a, b Fingerprint
	kind uint8 // kindSucc: succ(a) = b; kindPred: pred(a) = b
}

// container is one container's table in memory, and for the open
// container its bytes too.
type container struct {
	id     uint32
	chunks []chunkEntry
	links  []linkEntry
	data   []byte // open container only
	size   int64  // bytes on disk (data + table + trailer)
	dirty  bool   // open container: changed since last written
}

// fileSize is the container's size once encoded.
func (c *container) fileSize() int64 {
	return int64(len(c.data) + len(c.chunks)*chunkEntryLen + len(c.links)*linkEntryLen + trailerLen)
}

// appendTable appends the table and trailer of c (after its data).
func (c *container) appendTable(dst []byte, dataLen int) []byte {
	start := len(dst)
	for _, e := range c.chunks {
		dst = append(dst, e.fp[:]...)
		dst = binary.BigEndian.AppendUint32(dst, e.off)
		dst = binary.BigEndian.AppendUint32(dst, e.n)
		dst = binary.BigEndian.AppendUint32(dst, e.flags&^flagDead)
	}
	for _, l := range c.links {
		dst = append(dst, l.a[:]...)
		dst = append(dst, l.b[:]...)
		dst = append(dst, l.kind, 0, 0, 0)
	}
	crc := crc32.Checksum(dst[start:], castagnoli)
	t := len(dst)
	dst = append(dst, magicContainer[:]...)
	dst = append(dst, containerVersion, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.chunks)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.links)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(dataLen))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.logical()))
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[t:], castagnoli))
}

// encode returns the whole container file of the open container c.
func (c *container) encode() []byte {
	b := make([]byte, 0, c.fileSize())
	b = append(b, c.data...)
	return c.appendTable(b, len(c.data))
}

// logical is the sum of the chunk lengths (for a container without data,
// the bytes its chunks stand for).
func (c *container) logical() int64 {
	var n int64
	for _, e := range c.chunks {
		n += int64(e.n)
	}
	return n
}

// trailer is the fixed end of a container file.
type trailer struct {
	chunks, links int
	dataLen       int64
	logical       int64
	crc           uint32
}

func (t trailer) tableLen() int64 {
	return int64(t.chunks)*chunkEntryLen + int64(t.links)*linkEntryLen
}

// parseTrailer checks the trailer of a container file of size bytes.
func parseTrailer(b []byte, size int64) (trailer, error) {
	var t trailer
	if len(b) != trailerLen || [4]byte(b[:4]) != magicContainer || b[4] != containerVersion {
		return t, fmt.Errorf("%w: bad trailer", errContainer)
	}
	if crc32.Checksum(b[:36], castagnoli) != binary.BigEndian.Uint32(b[36:]) {
		return t, fmt.Errorf("%w: trailer checksum", errContainer)
	}
	t.chunks = int(binary.BigEndian.Uint32(b[8:]))
	t.links = int(binary.BigEndian.Uint32(b[12:]))
	t.dataLen = int64(binary.BigEndian.Uint64(b[16:]))
	t.logical = int64(binary.BigEndian.Uint64(b[24:]))
	t.crc = binary.BigEndian.Uint32(b[32:])
	if t.chunks > 1<<24 || t.links > 1<<24 || t.dataLen < 0 || t.logical < 0 || t.logical > int64(t.chunks)*MaxChunkLimit || t.dataLen+t.tableLen()+trailerLen != size {
		return t, fmt.Errorf("%w: %d chunks, %d links, %d data bytes in a %d-byte file", errContainer,
			t.chunks, t.links, t.dataLen, size)
	}
	return t, nil
}

// parseTable decodes a container's table (the bytes between its data and
// its trailer). Every chunk must lie inside the data region (or, for a
// container without data, have no offset) and be at most MaxChunkLimit.
func parseTable(id uint32, b []byte, t trailer) (*container, error) {
	if int64(len(b)) != t.tableLen() || crc32.Checksum(b, castagnoli) != t.crc {
		return nil, fmt.Errorf("%w: table checksum", errContainer)
	}
	c := &container{id: id, chunks: make([]chunkEntry, t.chunks), links: make([]linkEntry, t.links),
		size: t.dataLen + t.tableLen() + trailerLen}
	for i := range c.chunks {
		e := &c.chunks[i]
		copy(e.fp[:], b)
		e.off = binary.BigEndian.Uint32(b[32:])
		e.n = binary.BigEndian.Uint32(b[36:])
		e.flags = binary.BigEndian.Uint32(b[40:]) &^ flagDead
		b = b[chunkEntryLen:]
		dataEnd := int64(e.off) + int64(e.n)
		if e.n > MaxChunkLimit || (t.dataLen > 0 && dataEnd > t.dataLen) || (t.dataLen == 0 && e.off != 0) {
			return nil, fmt.Errorf("%w: chunk %d at [%d,+%d) outside %d data bytes", errContainer, i, e.off, e.n, t.dataLen)
		}
	}
	for i := range c.links {
		l := &c.links[i]
		copy(l.a[:], b)
		copy(l.b[:], b[32:])
		l.kind = b[64]
		b = b[linkEntryLen:]
		if l.kind != kindSucc && l.kind != kindPred {
			return nil, fmt.Errorf("%w: link %d of kind %d", errContainer, i, l.kind)
		}
	}
	return c, nil
}

// containerFiles is where containers live: a folder, or memory.
type containerFiles interface {
	// write stores container id (replacing a partial one); sync asks for
	// it to be durable before write returns.
	write(id uint32, b []byte, sync bool) error
	// readAt reads from container id of the given size.
	readAt(id uint32, p []byte, off int64) error
	remove(id uint32) error
	// list returns the ids and sizes of the containers present, oldest
	// first, removing leftovers of interrupted writes.
	list() ([]uint32, []int64, error)
	// syncAll makes the listed containers and the folder durable.
	syncAll(ids []uint32) error
	close() error
}

// memFiles keeps containers in memory.
type memFiles struct{ m map[uint32][]byte }

func (m *memFiles) write(id uint32, b []byte, _ bool) error { m.m[id] = b; return nil }
func (m *memFiles) remove(id uint32) error                  { delete(m.m, id); return nil }
func (m *memFiles) syncAll([]uint32) error                  { return nil }
func (m *memFiles) close() error                            { return nil }

func (m *memFiles) readAt(id uint32, p []byte, off int64) error {
	b, ok := m.m[id]
	if !ok || off < 0 || off+int64(len(p)) > int64(len(b)) {
		return fmt.Errorf("%w: container %d: read [%d,+%d) outside", errContainer, id, off, len(p))
	}
	copy(p, b[off:])
	return nil
}

func (m *memFiles) list() ([]uint32, []int64, error) {
	var ids []uint32
	for id := range m.m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	sizes := make([]int64, len(ids))
	for i, id := range ids {
		sizes[i] = int64(len(m.m[id]))
	}
	return ids, sizes, nil
}

// dirFiles keeps containers as files NNNNNNNNNN.aimc in a folder, with a
// small cache of open descriptors.
type dirFiles struct {
	dir   string
	open  map[uint32]*os.File
	order []uint32 // open descriptors, oldest first
}

const maxOpenContainers = 64

func (d *dirFiles) path(id uint32) string {
	return filepath.Join(d.dir, fmt.Sprintf("%010d%s", id, containerExt))
}

func (d *dirFiles) write(id uint32, b []byte, sync bool) error {
	d.drop(id)
	if sync {
		return durable.WriteFile(d.path(id), b, 0o644)
	}
	tmp := d.path(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, d.path(id))
}

func (d *dirFiles) drop(id uint32) {
	if f, ok := d.open[id]; ok {
		f.Close()
		delete(d.open, id)
		for i, o := range d.order {
			if o == id {
				d.order = append(d.order[:i], d.order[i+1:]...)
				break
			}
		}
	}
}

func (d *dirFiles) readAt(id uint32, p []byte, off int64) error {
	f, ok := d.open[id]
	if !ok {
		var err error
		if f, err = os.Open(d.path(id)); err != nil {
			return err
		}
		if len(d.order) >= maxOpenContainers {
			d.drop(d.order[0])
		}
		d.open[id] = f
		d.order = append(d.order, id)
	}
	_, err := f.ReadAt(p, off)
	return err
}

func (d *dirFiles) remove(id uint32) error {
	d.drop(id)
	err := os.Remove(d.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (d *dirFiles) list() ([]uint32, []int64, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, nil, err
	}
	var ids []uint32
	var sizes []int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, containerExt+".tmp") {
			_ = os.Remove(filepath.Join(d.dir, name)) // an interrupted write
			continue
		}
		num, ok := strings.CutSuffix(name, containerExt)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, uint32(id))
		sizes = append(sizes, info.Size())
	}
	// ReadDir sorts by name; the names are zero-padded ids.
	return ids, sizes, nil
}

func (d *dirFiles) syncAll(ids []uint32) error {
	for _, id := range ids {
		f, err := os.Open(d.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted meanwhile
		}
		if err != nil {
			return err
		}
		err = durable.Sync(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return durable.SyncDir(d.dir)
}

func (d *dirFiles) close() error {
	for _, id := range append([]uint32(nil), d.order...) {
		d.drop(id)
	}
	return nil
}

// readContainer reads the table of container id (size bytes on disk).
func readContainer(files containerFiles, id uint32, size int64) (*container, error) {
	if size < trailerLen {
		return nil, fmt.Errorf("%w: container %d has %d bytes", errContainer, id, size)
	}
	tb := make([]byte, trailerLen)
	if err := files.readAt(id, tb, size-trailerLen); err != nil {
		return nil, err
	}
	t, err := parseTrailer(tb, size)
	if err != nil {
		return nil, fmt.Errorf("container %d: %w", id, err)
	}
	b := make([]byte, t.tableLen())
	if err := files.readAt(id, b, t.dataLen); err != nil {
		return nil, err
	}
	c, err := parseTable(id, b, t)
	if err != nil {
		return nil, fmt.Errorf("container %d: %w", id, err)
	}
	return c, nil
}
