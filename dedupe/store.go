package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// Default sizes of a Store.
const (
	// DefaultStoreBytes is the capacity of a memory-only store.
	DefaultStoreBytes = 256 << 20
	// DefaultDiskStoreBytes caps the default capacity of a store in a
	// folder, which is otherwise DefaultDiskShare of the free space of the
	// folder's file system (plus what the store already holds).
	DefaultDiskStoreBytes = 32 << 30
	// DefaultDiskShare is the share of the free space a store in a folder
	// takes by default (see DefaultDiskStoreBytes).
	DefaultDiskShare = 0.5
	// DefaultCacheEntries is how many container-table entries (chunks and
	// links of recently used containers) stay in memory by default: about
	// 4 GiB of stream at 8 KiB chunks, ~80 bytes each.
	DefaultCacheEntries = 512 << 10
	// maxContainerBytes is the largest container (chunk bytes).
	maxContainerBytes = 16 << 20
	// maxContainerChunks bounds the chunks of one container.
	maxContainerChunks = 1 << 16
)

// Names inside StoreConfig.Dir.
const (
	storeMetaFile      = "store.meta"
	storeTableFile     = "index.tbl"
	storeContainerDir  = "containers"
	storeLockFile      = "lock"
	storePeerDir       = "peer"
	storeLegacyIndex   = "index.aim" // the RAM store's snapshot (before 2026-11)
	storeLegacyChunks  = "chunks"
	defaultSaveEvery   = 30 * time.Second
	storeFlagsDataless = 1
)

// ErrStoreLoad reports a store folder that exists but cannot be used (an
// unreadable meta file, one of another version, a store in use by another
// process). The caller decides: fail, or move it aside and go on cold.
var ErrStoreLoad = errors.New("dedupe: cannot load chunk store")

// ErrStoreBusy reports a store folder locked by another process (another
// proxy, or aimwan proxy prime): never move such a folder aside.
var ErrStoreBusy = errors.New("dedupe: chunk store in use")

// StoreConfig configures a Store. The zero value is a 256 MiB memory-only
// store.
type StoreConfig struct {
	// Dir is the store's folder ("" = memory only). OpenStore creates it
	// or opens the store in it.
	Dir string
	// MaxBytes is the capacity: bytes of disk for a store in a folder
	// (containers and index), bytes of memory otherwise. When it is
	// reached the oldest containers are evicted. 0 means
	// DefaultStoreBytes in memory, and in a folder DefaultDiskShare of the
	// file system's free space, at most DefaultDiskStoreBytes.
	MaxBytes int64
	// SaveInterval is how often Serve makes the store durable (the open
	// container written, new containers and the index fsynced). A SIGKILL
	// loses at most what came after. 0 means 30 seconds.
	SaveInterval time.Duration
	// CacheEntries bounds the container tables kept in memory (entries of
	// recently used containers). 0 means DefaultCacheEntries.
	CacheEntries int
	// Logger receives open, rebuild and eviction events. nil means
	// slog.Default().
	Logger *slog.Logger

	// dataless: a store of fingerprints and links only (a PeerIndex);
	// MaxBytes then counts the chunk lengths it was told.
	dataless bool
}

func (c StoreConfig) withDefaults() (StoreConfig, error) {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultStoreBytes
		if c.Dir != "" && !c.dataless {
			n, err := defaultDiskBytes(c.Dir)
			if err != nil {
				return c, err
			}
			c.MaxBytes = n
		}
	}
	if c.SaveInterval == 0 {
		c.SaveInterval = defaultSaveEvery
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func (c StoreConfig) validate() error {
	if c.MaxBytes < 64<<10 || c.MaxBytes > 1<<50 {
		return fmt.Errorf("store capacity %d bytes out of range [64KiB, 1PiB]", c.MaxBytes)
	}
	if c.SaveInterval < 0 {
		return fmt.Errorf("store save interval %v is negative", c.SaveInterval)
	}
	if c.CacheEntries < 0 {
		return fmt.Errorf("store cache entries %d is negative", c.CacheEntries)
	}
	return nil
}

// defaultDiskBytes is DefaultDiskShare of the free space of dir's file
// system, counting the containers already there as free, capped at
// DefaultDiskStoreBytes.
func defaultDiskBytes(dir string) (int64, error) {
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(probe, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", probe, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	free += dirBytes(filepath.Join(dir, storeContainerDir))
	return max(min(int64(float64(free)*DefaultDiskShare), DefaultDiskStoreBytes), 64<<20), nil
}

func dirBytes(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// Store is the chunk store: chunks appended in arrival order to
// containers (files in a folder, or memory), a fingerprint table that
// finds them (in a file, read a bucket at a time), and a bounded cache of
// the tables of recently used containers, so a lookup near the last one
// costs no disk read. Successor links are implicit between chunks stored
// one after the other in a stream, and explicit link entries otherwise.
// The oldest containers are evicted first. Nothing in it is trusted: Get
// re-hashes what it returns. Safe for concurrent use.
type Store struct {
	cfg             StoreConfig
	files           containerFiles
	tbl             *table
	lockf           *os.File
	containerBytes  int
	containerChunks int

	ckpt sync.Mutex // one Save, Wipe or Close at a time

	mu       sync.Mutex
	epoch    uint64
	mark     uint64       // priming passes in this epoch (a peer index: the peer's, learnt)
	primes   []primeRange // containers of the latest priming passes
	peerCap  int64        // a peer index: the peer store's capacity (0 = not told)
	memCap   int64        // a memory-only store: the capacity it was made with
	open     *container
	spare    []byte   // buffer of the last sealed container, reused
	ids      []uint32 // sealed containers, oldest first
	info     map[uint32]cinfo
	next     uint32 // id of the next container
	bytes    int64  // sealed containers (capacity units)
	chunks   int64  // chunks in sealed containers
	cache    cache
	unsynced []uint32 // sealed since the last Save
	closed   bool
	cnt      storeCounters
	scratch  []uint64
	missKey  uint64 // table key of the last chunk looked up in vain
	stored   int64  // chunk bytes of the sealed containers, in order (evicted ones too): where the open one starts

	peerOnce sync.Once
	peer     *PeerIndex
	peerErr  error
}

// cinfo is what the store keeps in memory per sealed container.
type cinfo struct {
	size    int64 // capacity units: file bytes, or logical bytes without data
	file    int64 // bytes on disk
	chunks  int32
	logical int64 // the chunks' bytes
	pos     int64 // chunk bytes stored before it (since the store opened), for ages
}

type storeCounters struct {
	atomicCounters
	containerReads, chunkReads, rebuildReads uint64
	evictedBytes, evictedContainers          uint64
	writeErrors                              uint64
	refreshed                                uint64
}

// StoreStats are the figures of a Store (see docs/metrics.md).
type StoreStats struct {
	Epoch             uint64
	Chunks            int    // chunks held
	Bytes             uint64 // bytes of containers (on disk, or memory), the open one included
	Capacity          uint64 // the configured capacity
	Containers        int    // sealed containers, plus the open one
	IndexBytes        uint64 // bytes of the fingerprint table (disk, or memory)
	IndexRAMBytes     uint64 // memory of cached container tables and the open container
	Hits, Misses      uint64 // Get calls that found / did not find the chunk
	Corrupt           uint64 // chunks whose bytes did not match their fingerprint
	TableReads        uint64 // fingerprint-table buckets read from disk
	ContainerReads    uint64 // container tables read (prefetch on lookup)
	ChunkReads        uint64 // chunks read from container files
	RebuildReads      uint64 // container tables read to rebuild the index at start-up
	EvictedBytes      uint64
	EvictedContainers uint64
	WriteErrors       uint64 // containers that could not be written (their chunks were dropped)
	Refreshed         uint64 // chunks stored again because they were used near the eviction end
}

// OpenStore opens the store in cfg.Dir (creating it), or a memory-only
// one. A store it cannot use is an error wrapping ErrStoreLoad. Opening
// reads the index header and the trailers of the containers, never the
// whole store; containers written after the last Save are re-indexed.
func OpenStore(cfg StoreConfig) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, info: map[uint32]cinfo{}, next: 1}
	s.sizeFor(cfg.MaxBytes)
	s.memCap = cfg.MaxBytes
	s.cache = newCache(cfg.CacheEntries)
	if cfg.Dir == "" {
		s.files = &memFiles{m: map[uint32][]byte{}}
		s.tbl = newMemTable(tableBuckets(cfg.MaxBytes))
		s.epoch = newEpoch()
		if cfg.dataless {
			s.epoch = 0
		}
		return s, nil
	}
	if err := s.openDir(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// sizeFor sets the capacity and the container size that follows from it.
func (s *Store) sizeFor(capacity int64) {
	s.cfg.MaxBytes = capacity
	s.containerBytes = int(containerBytesFor(capacity))
	s.containerChunks = min(maxContainerChunks, max(s.containerBytes/512, 256))
	if s.cfg.dataless {
		// Without data a container stands for its chunks' lengths.
		s.containerChunks = int(min(int64(16384), max(capacity/16/DefaultAvgSize, 16)))
	}
}

// containerBytesFor is the container size of a store of that capacity.
func containerBytesFor(capacity int64) int64 {
	return min(int64(maxContainerBytes), max(capacity/16, 64<<10))
}

// openDir opens or creates the store in cfg.Dir.
func (s *Store) openDir() error {
	dir, log := s.cfg.Dir, s.cfg.Logger
	cdir := filepath.Join(dir, storeContainerDir)
	if err := durable.MkdirAll(cdir, 0o755); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStoreLoad, dir, err)
	}
	if err := s.lock(); err != nil {
		return err
	}
	removeLegacy(dir, log)
	meta, ok, err := readMeta(filepath.Join(dir, storeMetaFile), s.cfg.dataless)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStoreLoad, dir, err)
	}
	epoch := meta.epoch
	if s.cfg.dataless && meta.capacity > 0 {
		// A peer index sized to the peer's store when it was last told.
		s.peerCap = meta.capacity
		s.sizeFor(peerHeldBytes(meta.capacity))
	}
	s.mark, s.primes = meta.mark, meta.primes
	s.files = &dirFiles{dir: cdir, open: map[uint32]*os.File{}}
	start := time.Now()
	if err := s.loadContainers(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStoreLoad, dir, err)
	}
	// The table takes its share of the capacity.
	buckets := tableBuckets(s.cfg.MaxBytes)
	tbl, hdr, rebuild, err := openFileTable(filepath.Join(dir, storeTableFile), buckets)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStoreLoad, dir, err)
	}
	s.tbl = tbl
	from := hdr.synced + 1
	if rebuild {
		from = 0
		if len(s.ids) > 0 {
			log.Warn("chunk store index missing or resized: rebuilding it from the containers", "dir", dir,
				"containers", len(s.ids))
		}
	}
	if err := s.reindex(from); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStoreLoad, dir, err)
	}
	if !ok || (s.cfg.dataless && len(s.ids) == 0) {
		// No meta: a new store, or one whose meta was lost; peers must
		// learn it again under a new epoch.
		if s.cfg.dataless {
			epoch = 0
		} else {
			epoch = newEpoch()
		}
		s.mark, s.primes = 0, nil
		s.epoch = epoch
		if err := s.writeMeta(s.metaLocked()); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrStoreLoad, dir, err)
		}
	}
	s.epoch = epoch
	s.mu.Lock()
	s.evictLocked()
	s.mu.Unlock()
	log.Info("chunk store open", "dir", dir, "capacity", s.cfg.MaxBytes, "bytes", s.bytes, "containers", len(s.ids),
		"chunks", s.chunks, "reindexed", s.cnt.rebuildReads, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// lock takes the folder's lock file: two processes must not share a store.
func (s *Store) lock() error {
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, storeLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStoreLoad, s.cfg.Dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("%w: %s is locked by another process (%w)", ErrStoreBusy, s.cfg.Dir, err)
	}
	s.lockf = f
	return nil
}

// removeLegacy deletes the snapshot of the former RAM store.
func removeLegacy(dir string, log *slog.Logger) {
	for _, name := range []string{storeLegacyIndex, storeLegacyChunks} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			log.Info("removing the snapshot of the former in-memory chunk store", "path", p)
			_ = os.RemoveAll(p)
		}
	}
}

// loadContainers lists the containers and reads their trailers; torn or
// foreign ones are removed.
func (s *Store) loadContainers() error {
	ids, sizes, err := s.files.list()
	if err != nil {
		return err
	}
	tb := make([]byte, trailerLen)
	for k, id := range ids {
		var t trailer
		err := s.files.readAt(id, tb, sizes[k]-trailerLen)
		if err == nil && sizes[k] >= trailerLen {
			t, err = parseTrailer(tb, sizes[k])
		} else if err == nil {
			err = errContainer
		}
		if err != nil {
			s.cfg.Logger.Warn("chunk store: removing a damaged container", "container", id, "err", err)
			_ = s.files.remove(id)
			continue
		}
		ci := cinfo{size: sizes[k], file: sizes[k], chunks: int32(t.chunks), logical: t.logical, pos: s.stored}
		s.stored += t.logical
		if s.cfg.dataless {
			ci.size = t.logical
		}
		s.info[id] = ci
		s.ids = append(s.ids, id)
		s.bytes += ci.size
		s.chunks += int64(t.chunks)
		s.next = max(s.next, id+1)
	}
	return nil
}

// reindex adds the entries of containers with id >= from to the table.
func (s *Store) reindex(from uint32) error {
	for _, id := range append([]uint32(nil), s.ids...) {
		if id < from {
			continue
		}
		c, err := readContainer(s.files, id, s.info[id].file)
		s.cnt.rebuildReads++
		if err != nil {
			s.cfg.Logger.Warn("chunk store: removing a damaged container", "container", id, "err", err)
			s.dropContainerLocked(id)
			continue
		}
		if err := s.indexLocked(c); err != nil {
			return err
		}
	}
	return nil
}

// indexLocked adds a container's entries to the table.
func (s *Store) indexLocked(c *container) error {
	for i, e := range c.chunks {
		l := loc{c: c.id, kind: kindChunk, i: uint32(i)}
		if err := s.tbl.insert(tableKey(kindChunk, e.fp.short()), l.pack(), s.liveVal); err != nil {
			return err
		}
	}
	for i, ln := range c.links {
		l := loc{c: c.id, kind: ln.kind, i: uint32(i)}
		if err := s.tbl.insert(tableKey(ln.kind, ln.a.short()), l.pack(), s.liveVal); err != nil {
			return err
		}
	}
	return nil
}

// liveVal reports whether a table value points into a live container.
func (s *Store) liveVal(v uint64) bool { return s.live(unpackLoc(v).c) }

func (s *Store) live(id uint32) bool {
	if s.open != nil && id == s.open.id {
		return true
	}
	_, ok := s.info[id]
	return ok
}

// Wipe drops every chunk and link and starts a new epoch.
func (s *Store) Wipe() { s.wipe(newEpoch()) }

func (s *Store) wipe(epoch uint64) {
	s.ckpt.Lock()
	defer s.ckpt.Unlock()
	s.mu.Lock()
	for _, id := range append([]uint32(nil), s.ids...) {
		s.dropContainerLocked(id)
	}
	if s.open != nil {
		_ = s.files.remove(s.open.id)
		s.cache.forget(s.open)
		s.open = nil
	}
	s.cache.clear()
	s.missKey = 0
	if err := s.tbl.reset(); err != nil {
		s.cfg.Logger.Warn("chunk store: cannot reset the index", "err", err)
	}
	s.unsynced = nil
	s.mu.Unlock()
	s.setEpoch(epoch)
}

// dropContainerLocked forgets a sealed container and removes its file.
func (s *Store) dropContainerLocked(id uint32) {
	ci, ok := s.info[id]
	if !ok {
		return
	}
	delete(s.info, id)
	if len(s.ids) > 0 && s.ids[0] == id {
		s.ids = s.ids[1:]
	}
	for k, x := range s.ids {
		if x == id {
			s.ids = append(s.ids[:k:k], s.ids[k+1:]...)
			break
		}
	}
	s.bytes -= ci.size
	s.chunks -= int64(ci.chunks)
	s.cache.drop(id)
	if err := s.files.remove(id); err != nil {
		s.cfg.Logger.Warn("chunk store: cannot remove a container", "container", id, "err", err)
	}
}

// Serve makes the store durable every SaveInterval, and once more (the
// open container sealed) when ctx ends. The store stays open: Close it
// when done.
func (s *Store) Serve(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.ckpt.Lock()
			defer s.ckpt.Unlock()
			return s.save(true)
		case <-t.C:
			if err := s.Save(); err != nil {
				s.cfg.Logger.Warn("chunk store save failed", "err", err)
			}
		}
	}
}

// Stats returns the store's figures.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StoreStats{
		Epoch: s.epoch, Chunks: int(s.chunks), Bytes: uint64(s.bytes), Capacity: uint64(s.cfg.MaxBytes),
		Containers: len(s.ids), IndexBytes: s.tbl.bytes(), IndexRAMBytes: s.cache.ramBytes(),
		Hits: s.cnt.hits.Load(), Misses: s.cnt.misses.Load(), Corrupt: s.cnt.corrupt.Load(),
		TableReads: s.tbl.reads, ContainerReads: s.cnt.containerReads, ChunkReads: s.cnt.chunkReads,
		RebuildReads: s.cnt.rebuildReads, EvictedBytes: s.cnt.evictedBytes,
		EvictedContainers: s.cnt.evictedContainers, WriteErrors: s.cnt.writeErrors, Refreshed: s.cnt.refreshed,
	}
	if s.open != nil {
		st.Chunks += len(s.open.chunks)
		st.Bytes += uint64(s.openSize())
		st.Containers++
		st.IndexRAMBytes += uint64(cap(s.open.data))
	}
	return st
}

// openSize is the open container's size in capacity units.
func (s *Store) openSize() int64 {
	if s.cfg.dataless {
		return s.open.logical()
	}
	return s.open.fileSize()
}

func (t *table) bytes() uint64 { return t.buckets * tableBucket }

func newEpoch() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	if e := binary.BigEndian.Uint64(b[:]); e != 0 {
		return e
	}
	return 1
}
