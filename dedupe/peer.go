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
// the folder "peer" of this store (in memory for a memory-only store) and
// sized like this store: the peer is assumed to hold as much. It is saved
// and closed with this store, and keeps its epoch across restarts, so a
// sender that restarts needs no held list from a peer that did not.
func (s *Store) PeerIndex() (*PeerIndex, error) {
	s.peerOnce.Do(func() {
		cfg := StoreConfig{MaxBytes: s.cfg.MaxBytes, SaveInterval: s.cfg.SaveInterval,
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

// LoadHeld merges a held list produced by the peer's Store.AppendHeld.
// When the list's epoch differs from the index's, the index is emptied
// first. A malformed list is an error wrapping ErrCorrupt.
func (x *PeerIndex) LoadHeld(b []byte) error {
	r := reader{b: b, what: "held list"}
	r.header(magicHeld)
	epoch := r.u64()
	n := r.uvarint("entry count", uint64(len(b)/16))
	if r.err != nil {
		return r.err
	}
	entries := r.bytes(int(n) * 16)
	if err := r.end(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.setEpochLocked(epoch)
	for i := 0; i < len(entries); i += 16 {
		s := binary.BigEndian.Uint64(entries[i:])
		succ := binary.BigEndian.Uint64(entries[i+8:])
		if s == 0 {
			return fmt.Errorf("%w: held list entry %d has a zero fingerprint", ErrCorrupt, i/16)
		}
		x.addLocked(s, DefaultAvgSize)
		if succ != 0 {
			x.linkLocked(s, succ)
		}
	}
	return nil
}

// AppendHeld appends the held list of the store to dst: its epoch and, in
// the order they were stored, the short fingerprint and short successor of
// every chunk it holds (16 bytes a chunk). The peer feeds it to
// PeerIndex.LoadHeld: priming exchanges fingerprints, never data. It reads
// the tables of all containers, not their data.
func (s *Store) AppendHeld(dst []byte) []byte {
	s.mu.Lock()
	dst = appendHeader(dst, magicHeld)
	dst = binary.BigEndian.AppendUint64(dst, s.epoch)
	ids := append([]uint32(nil), s.ids...)
	if s.open != nil {
		ids = append(ids, s.open.id)
	}
	s.mu.Unlock()
	var body []byte
	held := 0
	for _, id := range ids { // a container at a time: the store stays usable
		s.mu.Lock()
		if c := s.tabLocked(id); c != nil {
			for i, e := range c.chunks {
				var succ uint64
				if nx, ok := s.nextLocked(c, uint32(i)); ok && nx.flags&flagFollows != 0 {
					succ = nx.fp.short()
				} else if lc, li, ok := s.findLocked(kindSucc, e.fp, c.id); ok {
					succ = lc.links[li].b.short()
				}
				body = binary.BigEndian.AppendUint64(body, e.fp.short())
				body = binary.BigEndian.AppendUint64(body, succ)
				held++
			}
		}
		s.mu.Unlock()
	}
	dst = binary.AppendUvarint(dst, uint64(held))
	return append(dst, body...)
}
