package dedupe

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// DefaultPeerChunks is the default capacity of a PeerIndex: about 8 GiB of
// peer cache at 8 KiB chunks.
const DefaultPeerChunks = 1 << 20

// PeerIndex is the sender's belief of what the peer's store holds: the
// short form (first 8 bytes) of every chunk's fingerprint and of its
// successor. A wrong belief costs a miss round trip, never correctness.
// Like the peer's fastcache it forgets in insertion order: two generations,
// the older dropped when the newer is full. Safe for concurrent use.
type PeerIndex struct {
	mu       sync.Mutex
	epoch    uint64
	cur, old map[uint64]peerEntry // short fingerprint -> its neighbours
	max      int
}

// NewPeerIndex returns an empty index that remembers about maxChunks chunks
// (0 means DefaultPeerChunks). Size it like the peer's store: its MaxBytes
// divided by the average chunk size.
func NewPeerIndex(maxChunks int) *PeerIndex {
	if maxChunks <= 0 {
		maxChunks = DefaultPeerChunks
	}
	return &PeerIndex{max: maxChunks, cur: map[uint64]peerEntry{}, old: map[uint64]peerEntry{}}
}

// peerEntry holds the short fingerprints of a chunk's successor and
// predecessor when first seen (0 = none).
type peerEntry struct{ succ, pred uint64 }

// Epoch is the peer store epoch this index describes (0 = not yet known).
func (x *PeerIndex) Epoch() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.epoch
}

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
	if epoch == x.epoch {
		return false
	}
	if x.epoch == 0 {
		x.epoch = epoch
		return false
	}
	x.epoch = epoch
	x.cur, x.old = map[uint64]peerEntry{}, map[uint64]peerEntry{}
	return true
}

// Len is the number of chunks the index believes the peer holds.
func (x *PeerIndex) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.cur) + len(x.old)
}

// lookupLocked returns the entry of s and whether s is known.
func (x *PeerIndex) lookupLocked(s uint64) (peerEntry, bool) {
	if v, ok := x.cur[s]; ok {
		return v, true
	}
	v, ok := x.old[s]
	return v, ok
}

// addLocked records that the peer holds s.
func (x *PeerIndex) addLocked(s uint64) {
	if _, ok := x.lookupLocked(s); ok {
		return
	}
	x.putLocked(s, peerEntry{})
}

// linkLocked records succ(a) = b and pred(b) = a, each unless already set
// (the same rule as Store.Link).
func (x *PeerIndex) linkLocked(a, b uint64) {
	if v, ok := x.lookupLocked(a); !ok || v.succ == 0 {
		v.succ = b
		x.putLocked(a, v)
	}
	if v, ok := x.lookupLocked(b); !ok || v.pred == 0 {
		v.pred = a
		x.putLocked(b, v)
	}
}

func (x *PeerIndex) putLocked(s uint64, e peerEntry) {
	if _, ok := x.cur[s]; !ok && len(x.cur) >= x.max/2 {
		x.old, x.cur = x.cur, make(map[uint64]peerEntry, len(x.cur))
	}
	x.cur[s] = e
}

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
		x.addLocked(s)
		if succ != 0 {
			x.linkLocked(s, succ)
		}
	}
	return nil
}

// AppendHeld appends the held list of the store to dst: its epoch and, in
// insertion order, the short fingerprint and short successor of every chunk
// it still holds (16 bytes a chunk). The peer feeds it to
// PeerIndex.LoadHeld: priming exchanges fingerprints, never data.
func (s *Store) AppendHeld(dst []byte) []byte {
	s.mu.Lock()
	s.compactLocked()
	log := append([]Fingerprint(nil), s.log...)
	epoch := s.epoch
	s.mu.Unlock()
	dst = appendHeader(dst, magicHeld)
	dst = binary.BigEndian.AppendUint64(dst, epoch)
	dst = binary.AppendUvarint(dst, uint64(len(log)))
	for _, fp := range log {
		var succ uint64
		if n, ok := s.Successor(fp); ok {
			succ = n.short()
		}
		dst = binary.BigEndian.AppendUint64(dst, fp.short())
		dst = binary.BigEndian.AppendUint64(dst, succ)
	}
	return dst
}

// appendIndex encodes the store's sidecar: epoch and insertion log.
func appendIndex(dst []byte, epoch uint64, log []Fingerprint) []byte {
	dst = appendHeader(dst, magicIndex)
	dst = binary.BigEndian.AppendUint64(dst, epoch)
	dst = binary.AppendUvarint(dst, uint64(len(log)))
	for _, fp := range log {
		dst = append(dst, fp[:]...)
	}
	return dst
}

func parseIndex(b []byte) (uint64, []Fingerprint, error) {
	r := reader{b: b, what: "store index"}
	r.header(magicIndex)
	epoch := r.u64()
	n := r.uvarint("entry count", uint64(len(b)/32))
	var log []Fingerprint
	if r.err == nil {
		log = make([]Fingerprint, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		log = append(log, r.fingerprint())
	}
	if err := r.end(); err != nil {
		return 0, nil, err
	}
	if epoch == 0 {
		return 0, nil, fmt.Errorf("%w: store index has epoch 0", ErrCorrupt)
	}
	return epoch, log, nil
}
