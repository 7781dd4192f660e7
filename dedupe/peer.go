package dedupe

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
)

// DefaultPeerChunks is the default capacity of a memory-only PeerIndex:
// about 8 GiB of peer store at 8 KiB chunks.
const DefaultPeerChunks = 1 << 20

// PeerIndex is the sender's belief of what the peer's store holds: the
// short form (first 8 bytes) of every chunk's fingerprint, in the order the
// peer learnt them, with the same successor links. It is a Store without
// data (containers of fingerprints, the same fingerprint table and
// eviction, oldest first), so it scales like the peer's store: on disk
// next to the sender's own store (Store.PeerIndex), or in memory
// (NewPeerIndex). A wrong belief costs a miss round trip, never
// correctness. Safe for concurrent use.
type PeerIndex struct {
	mu sync.Mutex // held by the encoder across a payload's decisions
	st *Store     // dataless; its epoch is the peer's store epoch described

	heldPrev, heldSucc uint64 // the last held-list entry, its link not yet recorded
}

// NewPeerIndex returns an empty memory-only index that remembers about
// maxChunks chunks (0 means DefaultPeerChunks). Size it like the peer's
// store: its capacity divided by the average chunk size.
func NewPeerIndex(maxChunks int) *PeerIndex {
	if maxChunks <= 0 {
		maxChunks = DefaultPeerChunks
	}
	st, err := OpenStore(StoreConfig{MaxBytes: int64(maxChunks) * DefaultAvgSize, dataless: true,
		CacheEntries: min(DefaultCacheEntries, max(maxChunks/4, 1024))})
	if err != nil {
		panic(err) // a memory-only store of a valid size cannot fail
	}
	return &PeerIndex{st: st}
}

// PeerIndex returns the index of what the peer's store holds, kept in
// the folder "peer" of this store (in memory for a memory-only store).
// Until the peer tells its capacity (SetPeerCapacity, remembered across
// restarts) the peer is assumed to be as large as this store. It is saved
// and closed with this store, and keeps its epoch across restarts, so a
// sender that restarts needs no held list from a peer that did not.
func (s *Store) PeerIndex() (*PeerIndex, error) {
	s.peerOnce.Do(func() {
		cfg := StoreConfig{MaxBytes: peerHeldBytes(s.cfg.MaxBytes), SaveInterval: s.cfg.SaveInterval,
			CacheEntries: s.cfg.CacheEntries, Logger: s.cfg.Logger.With("store", "peer-index"), dataless: true}
		if s.cfg.Dir != "" {
			cfg.Dir = filepath.Join(s.cfg.Dir, storePeerDir)
		}
		st, err := OpenStore(cfg)
		if err != nil {
			s.peerErr = err
			return
		}
		s.mu.Lock()
		s.peer = &PeerIndex{st: st}
		s.mu.Unlock()
	})
	return s.peer, s.peerErr
}

// padded is the stand-in fingerprint of a short one in the index's store.
func padded(short uint64) Fingerprint {
	var f Fingerprint
	binary.BigEndian.PutUint64(f[:8], short)
	return f
}

// Epoch is the peer store epoch this index describes (0 = not yet known).
func (x *PeerIndex) Epoch() uint64 { return x.st.Epoch() }

// SetEpoch records the peer's current store epoch (from the handshake or a
// miss list). When it differs from the known one the peer restarted cold or
// was wiped: the index is emptied and SetEpoch returns true. An index whose
// epoch is still unknown (0) adopts the first epoch it is told without
// emptying: call SetEpoch at every handshake, before encoding.
func (x *PeerIndex) SetEpoch(epoch uint64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.setEpochLocked(epoch)
}

func (x *PeerIndex) setEpochLocked(epoch uint64) bool {
	cur := x.st.Epoch()
	if epoch == cur {
		return false
	}
	if cur == 0 {
		x.st.setEpoch(epoch)
		return false
	}
	x.st.wipe(epoch)
	return true
}

// Len is the number of chunks the index believes the peer holds.
func (x *PeerIndex) Len() int { return x.st.Stats().Chunks }

// Stats are the figures of the index's store (fingerprints only).
func (x *PeerIndex) Stats() StoreStats { return x.st.Stats() }

// Save makes the index durable (see Store.Save).
func (x *PeerIndex) Save() error { return x.st.Save() }

// knownLocked reports whether the peer holds s.
func (x *PeerIndex) knownLocked(s uint64) bool { return x.st.Has(padded(s)) }

// succLocked is the short successor of s (0 = none).
func (x *PeerIndex) succLocked(s uint64) uint64 {
	if n, ok := x.st.Successor(padded(s)); ok {
		return n.short()
	}
	return 0
}

// hasPredLocked reports whether s has a predecessor.
func (x *PeerIndex) hasPredLocked(s uint64) bool {
	_, ok := x.st.Predecessor(padded(s))
	return ok
}

// addLocked records that the peer holds s, a chunk of n bytes.
func (x *PeerIndex) addLocked(s uint64, n int) { x.st.add(padded(s), nil, n) }

// linkLocked records succ(a) = b and pred(b) = a, each unless already set
// (the same rule as Store.Link).
func (x *PeerIndex) linkLocked(a, b uint64) { x.st.Link(padded(a), padded(b)) }

// SetPeerCapacity sizes the index to the peer's store of capacity bytes
// (told in the proxies' handshake): it then believes at most what such a
// store holds right after evicting (peerHeldBytes), forgetting its oldest
// chunks past that, so a smaller peer store does not cost a miss round trip
// per chunk it evicted. A memory-only index does not grow past the size it
// was made with. When the fingerprint table's size changes the index
// rebuilds it from its containers (reading every container's table).
func (x *PeerIndex) SetPeerCapacity(capacity int64) error {
	if capacity < 64<<10 || capacity > 1<<50 {
		return fmt.Errorf("dedupe: peer store capacity %d bytes out of range [64KiB, 1PiB]", capacity)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.st.setPeerCapacity(capacity)
}

// PeerCapacity is the peer store capacity the index is sized to (0 = not
// told: sized like the sender's own store).
func (x *PeerIndex) PeerCapacity() int64 {
	x.st.mu.Lock()
	defer x.st.mu.Unlock()
	return x.st.peerCap
}

// peerHeldBytes is the least a store of capacity bytes holds of chunk
// bytes once it has been filled (Store.evictLocked): its capacity less
// the fingerprint table, less the room kept for the open container and one
// more container (just evicted), less the containers' tables (44 bytes a
// chunk, a link entry for about one chunk in four), less 3% for chunks
// that reach the peer in another order than they were encoded.
func peerHeldBytes(capacity int64) int64 {
	cb := containerBytesFor(capacity)
	sealed := capacity - int64(tableBuckets(capacity))*tableBucket - 2*cb*101/100
	held := sealed / (DefaultAvgSize + chunkEntryLen + linkEntryLen/4) * DefaultAvgSize
	return max(held*97/100, 64<<10)
}

// setPeerCapacity resizes a store without data to mirror a peer store of
// that capacity (see PeerIndex.SetPeerCapacity).
func (s *Store) setPeerCapacity(capacity int64) error {
	s.ckpt.Lock()
	defer s.ckpt.Unlock()
	s.mu.Lock()
	if s.peerCap == capacity || s.closed {
		s.mu.Unlock()
		return nil
	}
	held := peerHeldBytes(capacity)
	if s.cfg.Dir == "" {
		held = min(held, s.memCap)
	}
	s.peerCap = capacity
	s.sizeFor(held)
	err := s.resizeTableLocked()
	s.evictLocked()
	m := s.metaLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.writeMeta(m)
}

// resizeTableLocked gives the fingerprint table the size of the current
// capacity, re-indexing every container when it changes.
func (s *Store) resizeTableLocked() error {
	want := tableBuckets(s.cfg.MaxBytes)
	if want == s.tbl.buckets {
		return nil
	}
	s.cfg.Logger.Info("chunk store: capacity changed, rebuilding the index", "capacity", s.cfg.MaxBytes,
		"containers", len(s.ids))
	if s.tbl.f == nil {
		s.tbl = newMemTable(want)
	} else {
		_ = s.tbl.close()
		tbl, _, _, err := openFileTable(filepath.Join(s.cfg.Dir, storeTableFile), want)
		if err != nil {
			s.tbl = newMemTable(want) // a cache: go on in memory rather than fail
			s.cfg.Logger.Warn("chunk store: cannot reopen the index file; keeping the index in memory", "err", err)
		} else {
			s.tbl = tbl
		}
	}
	s.missKey = 0
	return s.reindex(0)
}
