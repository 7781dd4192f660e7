package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/fastcache"
)

// DefaultStoreBytes is the default byte limit of a Store.
const DefaultStoreBytes = 256 << 20

// Names inside StoreConfig.Dir.
const (
	storeCacheDir  = "chunks"    // fastcache's own directory
	storeIndexFile = "index.aim" // epoch and insertion log (sidecar)
)

// ErrStoreLoad reports a persisted store that exists but could not be
// loaded. The caller decides: fail, or Wipe and go on cold.
var ErrStoreLoad = errors.New("dedupe: cannot load chunk store")

// StoreConfig configures a Store. The zero value is a 256 MiB memory-only store.
type StoreConfig struct {
	// Dir is where the store is persisted ("" = memory only). OpenStore
	// loads it when present.
	Dir string
	// MaxBytes is the memory limit of the cache (fastcache rounds it up to
	// at least 32 MiB). 0 means DefaultStoreBytes.
	MaxBytes int64
	// SaveInterval is how often Serve persists the store. 0 means 5 minutes.
	SaveInterval time.Duration
	// Logger receives load/save events. nil means slog.Default().
	Logger *slog.Logger
}

func (c StoreConfig) withDefaults() StoreConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultStoreBytes
	}
	if c.SaveInterval == 0 {
		c.SaveInterval = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c StoreConfig) validate() error {
	if c.MaxBytes < 0 || c.MaxBytes > 1<<40 {
		return fmt.Errorf("store max bytes %d out of range", c.MaxBytes)
	}
	if c.SaveInterval < 0 {
		return fmt.Errorf("store save interval %v is negative", c.SaveInterval)
	}
	return nil
}

// Store is the chunk store: fingerprint -> chunk bytes, plus the successor
// relation (which chunk followed which when first seen). It lives in a
// fastcache that may evict anything at any time, so it is only a hint: Get
// re-hashes what it returns. Safe for concurrent use.
type Store struct {
	cfg   StoreConfig
	cache atomic.Pointer[fastcache.Cache]

	mu        sync.Mutex
	epoch     uint64
	log       []Fingerprint // chunks in insertion order (may list evicted ones)
	compactAt int

	hits, misses, corrupt atomic.Uint64
}

// StoreStats are counters of a Store.
type StoreStats struct {
	Epoch        uint64
	Chunks       int    // entries in the insertion log (upper bound of chunks held)
	Bytes        uint64 // bytes used by the cache
	EvictedBytes uint64
	Hits, Misses uint64
	Corrupt      uint64 // entries whose bytes did not match their fingerprint
}

// OpenStore opens a store, loading it from cfg.Dir when a saved one exists.
// A saved store that cannot be loaded is an error wrapping ErrStoreLoad.
func OpenStore(cfg StoreConfig) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	if cfg.Dir != "" {
		ok, err := s.load()
		if err != nil {
			return nil, fmt.Errorf("%w from %s: %w", ErrStoreLoad, cfg.Dir, err)
		}
		if ok {
			cfg.Logger.Info("chunk store loaded", "dir", cfg.Dir, "chunks", len(s.log), "epoch", s.epoch)
			return s, nil
		}
		cfg.Logger.Info("chunk store starts cold", "dir", cfg.Dir)
	}
	s.cache.Store(fastcache.New(int(cfg.MaxBytes)))
	s.epoch = newEpoch()
	return s, nil
}

// load reads a saved store; false (and no error) when there is none.
func (s *Store) load() (bool, error) {
	cacheDir := filepath.Join(s.cfg.Dir, storeCacheDir)
	if _, err := os.Stat(cacheDir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, storeIndexFile))
	if err != nil {
		return false, err
	}
	epoch, log, err := parseIndex(b)
	if err != nil {
		return false, err
	}
	c, err := fastcache.LoadFromFileMaxBytes(cacheDir, int(s.cfg.MaxBytes))
	if err != nil {
		return false, err
	}
	s.cache.Store(c)
	s.epoch, s.log = epoch, log
	s.compactAt = max(2*len(log), 1<<16)
	return true, nil
}

// Save persists the store to cfg.Dir (no-op for a memory-only store). Both
// files are replaced atomically; a crash in between leaves a store that is
// merely less accurate, which is fine for a cache.
func (s *Store) Save() error {
	if s.cfg.Dir == "" {
		return nil
	}
	if err := s.cache.Load().SaveToFile(filepath.Join(s.cfg.Dir, storeCacheDir)); err != nil {
		return fmt.Errorf("save chunk store to %s: %w", s.cfg.Dir, err)
	}
	s.mu.Lock()
	b := appendIndex(nil, s.epoch, s.log)
	s.mu.Unlock()
	path := filepath.Join(s.cfg.Dir, storeIndexFile)
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("save chunk store index %s: %w", path, err)
	}
	return nil
}

// Serve saves the store every SaveInterval and once more when ctx ends.
func (s *Store) Serve(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.Save()
		case <-t.C:
			if err := s.Save(); err != nil {
				s.cfg.Logger.Warn("periodic chunk store save failed", "err", err)
			}
		}
	}
}

// Epoch identifies the store's content generation: a new random value
// whenever the store starts cold, is wiped or is primed. A peer that sees the epoch
// change drops its index of what this store holds.
func (s *Store) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// newGeneration starts a new epoch, keeping the content: peers drop their
// index of this store and learn it again from the held list.
func (s *Store) newGeneration() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = newEpoch()
}

// Wipe drops every chunk and link and starts a new epoch.
func (s *Store) Wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.Load().Reset()
	s.log, s.compactAt = nil, 0
	s.epoch = newEpoch()
}

func chunkKey(k *[33]byte, fp Fingerprint) []byte {
	k[0] = 'c'
	copy(k[1:], fp[:])
	return k[:]
}

func succKey(k *[33]byte, fp Fingerprint) []byte {
	k[0] = 's'
	copy(k[1:], fp[:])
	return k[:]
}

func predKey(k *[33]byte, fp Fingerprint) []byte {
	k[0] = 'p'
	copy(k[1:], fp[:])
	return k[:]
}

// Has reports whether the store (probably) holds the chunk.
func (s *Store) Has(fp Fingerprint) bool {
	var k [33]byte
	return s.cache.Load().Has(chunkKey(&k, fp))
}

// Get appends the chunk's bytes to dst. It re-hashes them: an entry that
// does not match its fingerprint is dropped and reported as a miss.
func (s *Store) Get(dst []byte, fp Fingerprint) ([]byte, bool) {
	var k [33]byte
	c := s.cache.Load()
	out, ok := c.HasGet(dst, chunkKey(&k, fp))
	if !ok {
		s.misses.Add(1)
		return dst, false
	}
	if Sum(out[len(dst):]) != fp {
		c.Del(k[:])
		s.corrupt.Add(1)
		s.misses.Add(1)
		return dst, false
	}
	s.hits.Add(1)
	return out, true
}

// Put stores a chunk. The caller guarantees fp == Sum(data) and
// len(data) <= MaxChunkLimit.
func (s *Store) Put(fp Fingerprint, data []byte) {
	var k [33]byte
	c := s.cache.Load()
	if c.Has(chunkKey(&k, fp)) {
		return
	}
	c.Set(k[:], data)
	s.mu.Lock()
	s.log = append(s.log, fp)
	if len(s.log) >= s.compactAt {
		s.compactLocked()
	}
	s.mu.Unlock()
}

// Successor returns the chunk that followed fp when fp was first seen.
func (s *Store) Successor(fp Fingerprint) (Fingerprint, bool) {
	var k [33]byte
	var buf [32]byte
	v, ok := s.cache.Load().HasGet(buf[:0], succKey(&k, fp))
	if !ok || len(v) != 32 {
		return Fingerprint{}, false
	}
	return Fingerprint(v), true
}

// Predecessor returns the chunk that preceded fp when fp was first seen.
func (s *Store) Predecessor(fp Fingerprint) (Fingerprint, bool) {
	var k [33]byte
	var buf [32]byte
	v, ok := s.cache.Load().HasGet(buf[:0], predKey(&k, fp))
	if !ok || len(v) != 32 {
		return Fingerprint{}, false
	}
	return Fingerprint(v), true
}

// Link records that b followed a: a's successor and b's predecessor, each
// unless already set.
func (s *Store) Link(a, b Fingerprint) {
	var k [33]byte
	c := s.cache.Load()
	if !c.Has(succKey(&k, a)) {
		c.Set(k[:], b[:])
	}
	if !c.Has(predKey(&k, b)) {
		c.Set(k[:], a[:])
	}
}

// compactLocked drops log entries whose chunk was evicted.
func (s *Store) compactLocked() {
	kept := s.log[:0]
	for _, fp := range s.log {
		if s.Has(fp) {
			kept = append(kept, fp)
		}
	}
	clear(s.log[len(kept):])
	s.log = kept
	s.compactAt = max(2*len(kept), 1<<16)
}

// Stats returns the store's counters.
func (s *Store) Stats() StoreStats {
	var fs fastcache.Stats
	s.cache.Load().UpdateStats(&fs)
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{
		Epoch: s.epoch, Chunks: len(s.log), Bytes: fs.BytesSize, EvictedBytes: fs.EvictedBytes,
		Hits: s.hits.Load(), Misses: s.misses.Load(), Corrupt: s.corrupt.Load(),
	}
}

func newEpoch() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	if e := binary.BigEndian.Uint64(b[:]); e != 0 {
		return e
	}
	return 1
}

// writeFileAtomic writes path through a temporary file, fsync and rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
