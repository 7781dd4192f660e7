package dedupe

import (
	"encoding/binary"
	"fmt"
)

// HeldEntryLen is the size of one entry of a held list: the short (8-byte)
// fingerprint of a chunk the store holds and the short fingerprint of its
// successor (0 = none).
const HeldEntryLen = 16

// HeldCursor walks what a store holds for a peer's index, a container at a
// time, so a store of terabytes is listed in the memory of one container
// table. Entries come in the order the chunks were stored.
type HeldCursor struct {
	// Epoch and Mark are the store's; the peer index records them once it
	// has every entry (PeerIndex.EndHeld).
	Epoch, Mark uint64
	// Count bounds the entries the cursor gives (fewer when containers are
	// evicted meanwhile); 0 when the peer index is up to date.
	Count int64

	s      *Store
	ids    []uint32   // containers to list, oldest first
	openID uint32     // the open container when the cursor was made (0 = none)
	openN  int        // its chunks then
	k, i   int        // next container (index in ids) and chunk
	c      *container // the table being listed, when the cursor read it
	next   *container // the following one, read for a successor
}

// HeldFor returns a cursor over what a peer index that describes this
// store at epoch and priming mark has yet to learn: every chunk when the
// epoch differs (a peer index that knows nothing, or another generation of
// this store) or when priming passes it missed are no longer on record;
// else the containers written by the priming passes after mark; else
// nothing. The store stays usable while the cursor is read.
func (s *Store) HeldFor(epoch, mark uint64) *HeldCursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := epoch != s.epoch || (mark < s.mark && s.mark-mark > uint64(len(s.primes)))
	return s.heldLocked(all, mark)
}

func (s *Store) heldLocked(all bool, mark uint64) *HeldCursor {
	h := &HeldCursor{Epoch: s.epoch, Mark: s.mark, s: s}
	if !all && mark >= s.mark {
		return h
	}
	var ranges []primeRange
	if !all {
		ranges = s.primes[len(s.primes)-int(s.mark-mark):]
	}
	in := func(id uint32) bool {
		for _, r := range ranges {
			if id >= r.from && id <= r.to {
				return true
			}
		}
		return all
	}
	for _, id := range s.ids {
		if in(id) {
			h.ids = append(h.ids, id)
			h.Count += int64(s.info[id].chunks)
		}
	}
	if s.open != nil && in(s.open.id) {
		h.openID, h.openN = s.open.id, len(s.open.chunks)
		h.ids = append(h.ids, s.open.id)
		h.Count += int64(h.openN)
	}
	return h
}

// Next appends the entries (HeldEntryLen bytes each) of up to max more
// chunks to dst. Once the cursor is done it returns dst unchanged.
func (h *HeldCursor) Next(dst []byte, max int) []byte {
	s := h.s
	for n := 0; n < max && h.k < len(h.ids); {
		s.mu.Lock() // a container at a time: the store stays usable
		id := h.ids[h.k]
		c := h.table(id)
		limit := 0
		if c != nil {
			limit = len(c.chunks)
			if id == h.openID {
				limit = min(limit, h.openN)
			}
		}
		for ; h.i < limit && n < max; h.i++ {
			e := c.chunks[h.i]
			if e.flags&flagDead != 0 {
				continue
			}
			dst = binary.BigEndian.AppendUint64(dst, e.fp.short())
			dst = binary.BigEndian.AppendUint64(dst, h.succLocked(c, h.i))
			n++
		}
		if h.i >= limit {
			h.k, h.i, h.c = h.k+1, 0, nil
		}
		s.mu.Unlock()
	}
	return dst
}

// table returns container id's table: the open one, a cached one, or read
// from its file and kept by the cursor only (listing a whole store must
// not flush the store's cache). nil once it was evicted.
func (h *HeldCursor) table(id uint32) *container {
	s := h.s
	switch {
	case s.open != nil && s.open.id == id:
		return s.open
	case h.c != nil && h.c.id == id:
		return h.c
	case h.next != nil && h.next.id == id:
		h.c, h.next = h.next, nil
		return h.c
	}
	if c := s.cache.get(id); c != nil {
		return c
	}
	h.c = h.read(id)
	return h.c
}

// read reads container id's table for the cursor (nil if not live).
func (h *HeldCursor) read(id uint32) *container {
	s := h.s
	ci, ok := s.info[id]
	if !ok {
		return nil
	}
	c, err := readContainer(s.files, id, ci.file)
	s.cnt.containerReads++
	if err != nil {
		s.cfg.Logger.Warn("chunk store: dropping an unreadable container", "container", id, "err", err)
		s.dropContainerLocked(id)
		return nil
	}
	return c
}

// succLocked is the short successor of chunk i of c (0 = none): the next
// chunk stored (maybe the first of the next container) when it follows,
// else an explicit link.
func (h *HeldCursor) succLocked(c *container, i int) uint64 {
	s := h.s
	var nx *chunkEntry
	if i+1 < len(c.chunks) {
		nx = &c.chunks[i+1]
	} else if n := h.peek(c.id + 1); n != nil && len(n.chunks) > 0 {
		nx = &n.chunks[0]
	}
	if nx != nil && nx.flags&flagFollows != 0 {
		return nx.fp.short()
	}
	if lc, li, ok := s.findLocked(kindSucc, c.chunks[i].fp, c.id); ok {
		return lc.links[li].b.short()
	}
	return 0
}

// peek returns container id's table without caching it in the store.
func (h *HeldCursor) peek(id uint32) *container {
	s := h.s
	switch {
	case s.open != nil && s.open.id == id:
		return s.open
	case h.next != nil && h.next.id == id:
		return h.next
	}
	if c := s.cache.get(id); c != nil {
		return c
	}
	h.next = h.read(id)
	return h.next
}

// AppendHeld appends the whole held list of the store to dst, as one
// message: magic, its epoch, the entry count and the entries (see
// HeldCursor, which lists a store without holding the list in memory).
// PeerIndex.LoadHeld reads it.
func (s *Store) AppendHeld(dst []byte) []byte {
	s.mu.Lock()
	h := s.heldLocked(true, 0)
	s.mu.Unlock()
	var body []byte
	for {
		n := len(body)
		if body = h.Next(body, 1<<16); len(body) == n {
			break
		}
	}
	dst = appendHeader(dst, magicHeld)
	dst = binary.BigEndian.AppendUint64(dst, h.Epoch)
	dst = binary.AppendUvarint(dst, uint64(len(body)/HeldEntryLen))
	return append(dst, body...)
}

// LoadHeld merges a held list made by Store.AppendHeld (see BeginHeld,
// AddHeld, EndHeld, which take it piece by piece). A malformed list is an
// error wrapping ErrCorrupt.
func (x *PeerIndex) LoadHeld(b []byte) error {
	r := reader{b: b, what: "held list"}
	r.header(magicHeld)
	epoch := r.u64()
	n := r.uvarint("entry count", uint64(len(b)/HeldEntryLen))
	if r.err != nil {
		return r.err
	}
	entries := r.bytes(int(n) * HeldEntryLen)
	if err := r.end(); err != nil {
		return err
	}
	x.BeginHeld(epoch)
	if err := x.AddHeld(entries); err != nil {
		return err
	}
	x.EndHeld(epoch, x.Mark())
	return nil
}

// BeginHeld prepares the index for a held list of the peer's store at
// epoch. An index that describes another epoch is emptied (true), and its
// epoch stays 0 until EndHeld: an interrupted list is asked for whole
// again. An index whose epoch is still unknown keeps what it has (chunks
// primed with PrimePeer).
func (x *PeerIndex) BeginHeld(epoch uint64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.heldPrev, x.heldSucc = 0, 0
	if cur := x.st.Epoch(); cur == epoch || cur == 0 {
		return false
	}
	x.st.wipe(0)
	return true
}

// AddHeld records the entries of a piece of a held list (a multiple of
// HeldEntryLen bytes, from HeldCursor.Next). A malformed piece is an error
// wrapping ErrCorrupt; the entries before the bad one are kept.
func (x *PeerIndex) AddHeld(entries []byte) error {
	if len(entries)%HeldEntryLen != 0 {
		return fmt.Errorf("%w: held list piece of %d bytes is not whole entries", ErrCorrupt, len(entries))
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := 0; i < len(entries); i += HeldEntryLen {
		s := binary.BigEndian.Uint64(entries[i:])
		succ := binary.BigEndian.Uint64(entries[i+8:])
		if s == 0 {
			return fmt.Errorf("%w: held list entry %d has a zero fingerprint", ErrCorrupt, i/HeldEntryLen)
		}
		x.addLocked(s, DefaultAvgSize)
		// A chunk's link is recorded once its successor is stored: when
		// that is the next entry (a stream, the common case) the link is
		// implicit and costs neither an entry nor a lookup.
		x.flushHeldLocked()
		x.heldPrev, x.heldSucc = s, succ
	}
	return nil
}

// flushHeldLocked records the successor link of the previous held entry.
func (x *PeerIndex) flushHeldLocked() {
	if x.heldPrev != 0 && x.heldSucc != 0 {
		x.linkLocked(x.heldPrev, x.heldSucc)
	}
	x.heldPrev, x.heldSucc = 0, 0
}

// EndHeld records that the index has learnt the peer's store at epoch up
// to priming mark (persisted with the index). If the index meanwhile
// learnt another epoch (from a miss list), it is left as it is.
func (x *PeerIndex) EndHeld(epoch, mark uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.flushHeldLocked()
	cur := x.st.Epoch()
	if cur != 0 && cur != epoch {
		return
	}
	x.st.mu.Lock()
	x.st.epoch, x.st.mark = epoch, mark
	x.st.mu.Unlock()
	x.st.persistMeta()
}

// Mark is the priming mark of the peer's store the index has learnt.
func (x *PeerIndex) Mark() uint64 {
	x.st.mu.Lock()
	defer x.st.mu.Unlock()
	return x.st.mark
}
