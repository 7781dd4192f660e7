package dedupe

import (
	"math/bits"
	"os"
)

// The absence filter answers "surely not stored" for most keys the store
// does not hold, without reading the fingerprint table: every new chunk is
// looked up before it is stored (a 1 KiB pread of a bucket, which costs
// more CPU than chunking and hashing the chunk on a busy virtual machine).
// It is a blocked Bloom filter (one 64-byte block per key, 6 bits set in
// it, 8 bits a key: about 3% false positives), split into generations of
// consecutive containers so that the keys of evicted containers leave with
// their generation (a Bloom filter cannot delete). A key the filter has is
// looked up as before; the filter is never trusted to say a key is there.
//
// Memory: about 9 bits per chunk of capacity (1.15 MB per 8 GiB at 8 KiB
// chunks, 147 MB per TiB), independent of what the store holds. It is
// built at start-up in the background from the containers' tables (0.5%
// of the store); until then lookups read the table as without it.
const (
	filterBitsPerKey   = 8
	filterGenerations  = 8
	filterHashesPerKey = 6
)

type bloomBlock [8]uint64 // 512 bits

// filterGen is the filter of the keys of containers first..first+span-1.
type filterGen struct {
	first  uint32
	blocks []bloomBlock
}

// absentFilter is a store's absence filter. The store's lock guards it.
type absentFilter struct {
	span   uint32 // containers per generation
	blocks int    // blocks per generation (a power of two)
	gens   []*filterGen
	ready  bool // every live container's keys are in
}

// newAbsentFilter sizes a filter for a store of maxContainers containers of
// about keysPerContainer keys each.
func newAbsentFilter(maxContainers, keysPerContainer int64) *absentFilter {
	span := max(1, (maxContainers+filterGenerations-1)/filterGenerations)
	n := max(1, span*keysPerContainer*filterBitsPerKey/512)
	return &absentFilter{span: uint32(min(span, 1<<30)), blocks: 1 << bits.Len64(uint64(n-1))}
}

// gen returns the generation of container id, made if missing.
func (f *absentFilter) gen(id uint32) *filterGen {
	first := id - id%f.span
	i := len(f.gens)
	for i > 0 && f.gens[i-1].first >= first {
		if f.gens[i-1].first == first {
			return f.gens[i-1]
		}
		i--
	}
	g := &filterGen{first: first, blocks: make([]bloomBlock, f.blocks)}
	f.gens = append(f.gens, nil)
	copy(f.gens[i+1:], f.gens[i:])
	f.gens[i] = g
	return g
}

// add records key, an entry of container id.
func (f *absentFilter) add(id uint32, key uint64) {
	g := f.gen(id)
	b := &g.blocks[(key>>40)&uint64(len(g.blocks)-1)]
	for i := range filterHashesPerKey {
		bit := (key >> (9 * i)) & 511
		b[bit>>6] |= 1 << (bit & 63)
	}
}

// mayHave reports whether key may be in the store (always, until ready).
func (f *absentFilter) mayHave(key uint64) bool {
	if !f.ready {
		return true
	}
	for _, g := range f.gens {
		b := &g.blocks[(key>>40)&uint64(len(g.blocks)-1)]
		in := true
		for i := range filterHashesPerKey {
			bit := (key >> (9 * i)) & 511
			if b[bit>>6]&(1<<(bit&63)) == 0 {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

// forget drops the generations whose containers are all older than
// oldest (the oldest live container).
func (f *absentFilter) forget(oldest uint32) {
	n := 0
	for n < len(f.gens) && f.gens[n].first+f.span <= oldest {
		n++
	}
	if n > 0 {
		f.gens = append(f.gens[:0], f.gens[n:]...)
	}
}

// ramBytes is the filter's memory.
func (f *absentFilter) ramBytes() uint64 { return uint64(len(f.gens)) * uint64(f.blocks) * 64 }

// addContainer records the keys of a container's table.
func (f *absentFilter) addContainer(c *container) {
	for _, e := range c.chunks {
		f.add(c.id, tableKey(kindChunk, e.fp.short()))
	}
	for _, l := range c.links {
		f.add(c.id, tableKey(l.kind, l.a.short()))
	}
}

// startFilterLocked gives a store in a folder a new absence filter for its
// capacity: ready at once when it holds no sealed container, else filled
// in the background (fillFilter).
func (s *Store) startFilterLocked() {
	if s.cfg.Dir == "" {
		return
	}
	s.newFilterLocked()
	if !s.absent.ready {
		s.filling = make(chan struct{})
		go s.fillFilter(s.absent, s.filling)
	}
}

func (s *Store) newFilterLocked() {
	perContainer := int64(s.containerBytes) / DefaultAvgSize * 11 / 10 // chunks and some links
	containers := s.cfg.MaxBytes / int64(s.containerBytes)
	if s.cfg.dataless {
		perContainer = int64(s.containerChunks)
		containers = s.cfg.MaxBytes / (int64(s.containerChunks) * DefaultAvgSize)
	}
	s.absent = newAbsentFilter(max(containers, 1)+1, max(perContainer, 1))
	s.absent.ready = len(s.ids) == 0
	if s.open != nil {
		s.absent.addContainer(s.open)
	}
}

// fillFilter reads the tables of the containers the store held when the
// filter was made and adds their keys, a container at a time, then makes
// the filter ready. Run in its own goroutine (done is closed at the end);
// it stops early when the store closes or the filter is replaced.
func (s *Store) fillFilter(f *absentFilter, done chan struct{}) {
	defer close(done)
	s.mu.Lock()
	ids := append([]uint32(nil), s.ids...)
	s.mu.Unlock()
	for _, id := range ids {
		s.mu.Lock()
		ci, live := s.info[id]
		stop := s.closed || s.absent != f
		s.mu.Unlock()
		if stop {
			return
		}
		if !live {
			continue
		}
		c, err := readContainerFile(s.files.(*dirFiles).path(id), id, ci.file)
		if err != nil {
			continue // evicted meanwhile, or damaged: a lookup will drop it
		}
		s.mu.Lock()
		if s.absent == f {
			f.addContainer(c)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	f.ready = s.absent == f
	s.mu.Unlock()
}

// readContainerFile reads a container's table from its own descriptor,
// without the store's lock (the store's descriptors are guarded by it).
func readContainerFile(path string, id uint32, size int64) (*container, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readContainer(fileReader{f}, id, size)
}

// fileReader reads one container file for readContainer.
type fileReader struct{ f *os.File }

func (r fileReader) readAt(_ uint32, p []byte, off int64) error {
	_, err := r.f.ReadAt(p, off)
	return err
}
