package dedupe

import (
	"errors"
	"slices"
	"sync/atomic"
)

// errNoData: a store of fingerprints only has no chunk bytes.
var errNoData = errors.New("store holds no chunk data")

// tabLocked returns the table of container id: the open one, a cached
// one, or read from its file (and cached). nil when it is not live or is
// damaged (it is then dropped).
func (s *Store) tabLocked(id uint32) *container {
	if s.open != nil && id == s.open.id {
		return s.open
	}
	if c := s.cache.get(id); c != nil {
		return c
	}
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
	s.cache.add(c)
	return c
}

// matches reports whether entry l of container c is the kind entry of fp.
func matches(c *container, l loc, kind uint8, fp Fingerprint) bool {
	if kind == kindChunk {
		return int(l.i) < len(c.chunks) && c.chunks[l.i].fp == fp && c.chunks[l.i].flags&flagDead == 0
	}
	return int(l.i) < len(c.links) && c.links[l.i].kind == kind && c.links[l.i].a == fp
}

// findLocked finds the newest entry of kind for fp in a container at
// least minC: the cache first, then the fingerprint table (whose hit
// loads the container's table: the prefetch). Link entries of a chunk in
// the open container are all in the cache.
func (s *Store) findLocked(kind uint8, fp Fingerprint, minC uint32) (*container, uint32, bool) {
	key := tableKey(kind, fp.short())
	if l, ok := s.cache.idx[key]; ok && l.c >= minC {
		if c := s.tabLocked(l.c); c != nil && matches(c, l, kind, fp) {
			return c, l.i, true
		}
	}
	if (s.open != nil && minC >= s.open.id) || (kind == kindChunk && key == s.missKey) {
		return nil, 0, false
	}
	s.scratch = s.tbl.lookup(s.scratch[:0], key)
	slices.SortFunc(s.scratch, func(a, b uint64) int { return int(b>>32) - int(a>>32) }) // newest first
	for _, v := range s.scratch {
		l := unpackLoc(v)
		if l.kind != kind || l.c < minC || !s.live(l.c) {
			continue
		}
		if c := s.tabLocked(l.c); c != nil && matches(c, l, kind, fp) {
			return c, l.i, true
		}
	}
	if kind == kindChunk {
		s.missKey = key // the next Put of this chunk need not look again
	}
	return nil, 0, false
}

// Has reports whether the store (probably) holds the chunk.
func (s *Store) Has(fp Fingerprint) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, ok := s.findLocked(kindChunk, fp, 0)
	return ok
}

// Get appends the chunk's bytes to dst. It re-hashes them: a chunk that
// does not match its fingerprint is dropped and reported as a miss.
func (s *Store) Get(dst []byte, fp Fingerprint) ([]byte, bool) { return s.get(dst, fp, false) }

// use is Get for a chunk a stream references (the sender's peer index
// records the same use): one near the eviction end is refreshed.
func (s *Store) use(dst []byte, fp Fingerprint) ([]byte, bool) { return s.get(dst, fp, true) }

func (s *Store) get(dst []byte, fp Fingerprint, refresh bool) ([]byte, bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return dst, false
	}
	c, i, ok := s.findLocked(kindChunk, fp, 0)
	if !ok || s.cfg.dataless {
		s.mu.Unlock()
		s.cnt.misses.Add(1)
		return dst, false
	}
	e := c.chunks[i]
	out := slices.Grow(dst, int(e.n))[:len(dst)+int(e.n)]
	var err error
	if c == s.open {
		copy(out[len(dst):], c.data[e.off:e.off+e.n])
	} else {
		err = s.files.readAt(c.id, out[len(dst):], int64(e.off))
		s.cnt.chunkReads++
	}
	s.mu.Unlock()
	if err == nil && Sum(out[len(dst):]) == fp {
		s.cnt.hits.Add(1)
		s.mu.Lock()
		if refresh && !s.closed && s.live(c.id) && s.nearEvictionLocked(c, i) {
			// Unless another reader refreshed it meanwhile.
			if nc, _, ok := s.findLocked(kindChunk, fp, 0); ok && nc == c {
				s.refreshLocked(fp, out[len(dst):], len(out)-len(dst))
			}
		}
		s.mu.Unlock()
		return out, true
	}
	s.mu.Lock()
	c.chunks[i].flags |= flagDead // a later Put stores it again
	s.mu.Unlock()
	s.cnt.corrupt.Add(1)
	s.cnt.misses.Add(1)
	return dst, false
}

// Put stores a chunk. The caller guarantees fp == Sum(data) and
// len(data) <= MaxChunkLimit.
func (s *Store) Put(fp Fingerprint, data []byte) { s.add(fp, data, len(data)) }

// add stores a chunk of n bytes (data is nil in a store without data).
func (s *Store) add(fp Fingerprint, data []byte, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if c, i, ok := s.findLocked(kindChunk, fp, 0); ok {
		if s.nearEvictionLocked(c, i) {
			s.refreshLocked(fp, data, n)
		}
		return false
	}
	s.appendChunkLocked(fp, data, n)
	return true
}

// appendChunkLocked stores a chunk in the open container.
func (s *Store) appendChunkLocked(fp Fingerprint, data []byte, n int) {
	s.roomLocked(len(data))
	c := s.open
	e := chunkEntry{fp: fp, n: uint32(n)}
	if !s.cfg.dataless {
		e.off = uint32(len(c.data))
		c.data = append(c.data, data...)
	}
	c.chunks = append(c.chunks, e)
	c.dirty = true
	s.missKey = 0
	s.cache.set(tableKey(kindChunk, fp.short()), loc{c: c.id, kind: kindChunk, i: uint32(len(c.chunks) - 1)})
}

// Refreshing: a chunk used (read, or stored again) when its container is
// old enough to be evicted soon is stored again in the open container,
// with its links, so what every stream references — a template's chunks
// under its clones — does not leave with its old container. "Old" is an
// age in bytes stored since, against what the receiver's store holds once
// full (peerHeldBytes of its capacity), which both sides know: the
// receiver refreshes from storeRefreshAge of it, the sender's peer index
// (which sees the same stream) from peerRefreshAge, later, so that it does
// not believe in a chunk the receiver did not keep.
const (
	storeRefreshAge = 0.70
	peerRefreshAge  = 0.70
)

// nearEvictionLocked reports whether chunk i of sealed container c is old
// enough to be refreshed when used: the chunk bytes stored after it (the
// same count on both sides of a link) against the horizon.
func (s *Store) nearEvictionLocked(c *container, i uint32) bool {
	ci, ok := s.info[c.id]
	if c == s.open || !ok || ci.chunks == 0 {
		return false
	}
	horizon, share := peerHeldBytes(s.cfg.MaxBytes), storeRefreshAge
	if s.cfg.dataless {
		horizon, share = s.cfg.MaxBytes, peerRefreshAge
		if s.peerCap > 0 {
			horizon = peerHeldBytes(s.peerCap)
		}
	}
	// The chunk bytes stored after this one, exactly, so that both sides
	// decide alike: its offset in the container's data, or without data
	// the lengths before it (summed only when the container straddles the
	// threshold).
	now := s.stored
	if s.open != nil {
		now += s.open.logical()
	}
	limit := int64(share * float64(horizon))
	switch {
	case now-ci.pos < limit:
		return false
	case now-(ci.pos+ci.logical) >= limit:
		return true
	case !s.cfg.dataless:
		return now-(ci.pos+int64(c.chunks[i].off)) >= limit
	}
	at := ci.pos
	for _, e := range c.chunks[:i] {
		at += int64(e.n)
	}
	return now-at >= limit
}

// refreshLocked stores a chunk the store holds again in the open
// container, with the successor and predecessor it had: implicit when its
// predecessor is the chunk stored just before it, else link entries.
func (s *Store) refreshLocked(fp Fingerprint, data []byte, n int) {
	pred, hasPred := s.predLocked(fp)
	succ, hasSucc := s.succLocked(fp)
	s.appendChunkLocked(fp, data, n)
	s.cnt.refreshed++
	c := s.open
	i := uint32(len(c.chunks) - 1)
	if hasPred {
		p, ok := s.prevLocked(c, i)
		if ps, has := s.succLocked(pred); ok && p.fp == pred && (!has || ps == fp) {
			c.chunks[i].flags |= flagFollows
		} else {
			s.appendLinkLocked(fp, pred, kindPred)
		}
	}
	if hasSucc {
		s.appendLinkLocked(fp, succ, kindSucc)
	}
}

// budgetLocked is the capacity the containers may use and the room kept
// for the open container.
func (s *Store) budgetLocked() (budget, reserve int64) {
	budget = s.cfg.MaxBytes
	reserve = int64(s.containerBytes) * 101 / 100 // data and a table of ~8 KiB chunks
	if s.cfg.dataless {
		reserve = int64(s.containerChunks) * DefaultAvgSize
	} else {
		budget -= int64(s.tbl.bytes())
	}
	return budget, reserve
}

// roomLocked makes sure the open container takes dataLen more bytes and
// one more entry, sealing it first when full.
func (s *Store) roomLocked(dataLen int) {
	if c := s.open; c != nil && len(c.chunks)+len(c.links) > 0 &&
		(len(c.data)+dataLen > s.containerBytes || len(c.chunks)+len(c.links) >= s.containerChunks) {
		s.sealLocked()
	}
	if s.open == nil {
		s.open = &container{id: s.next, data: s.spare[:0]}
		if s.open.data == nil && !s.cfg.dataless {
			s.open.data = make([]byte, 0, s.containerBytes)
		}
		s.spare = nil
		s.next++
	}
}

// Successor returns the chunk that followed fp when fp was first seen.
func (s *Store) Successor(fp Fingerprint) (Fingerprint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.succLocked(fp)
}

// Predecessor returns the chunk that preceded fp when fp was first seen.
func (s *Store) Predecessor(fp Fingerprint) (Fingerprint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.predLocked(fp)
}

// succLocked: the next chunk stored when it follows fp, else fp's explicit
// successor link (one recorded since fp was stored).
func (s *Store) succLocked(fp Fingerprint) (Fingerprint, bool) {
	var minC uint32
	if c, i, ok := s.findLocked(kindChunk, fp, 0); ok {
		if n, ok := s.nextLocked(c, i); ok && n.flags&flagFollows != 0 {
			return n.fp, true
		}
		minC = c.id
	}
	if c, i, ok := s.findLocked(kindSucc, fp, minC); ok {
		return c.links[i].b, true
	}
	return Fingerprint{}, false
}

func (s *Store) predLocked(fp Fingerprint) (Fingerprint, bool) {
	var minC uint32
	if c, i, ok := s.findLocked(kindChunk, fp, 0); ok {
		if c.chunks[i].flags&flagFollows != 0 {
			if p, ok := s.prevLocked(c, i); ok {
				return p.fp, true
			}
		}
		minC = c.id
	}
	if c, i, ok := s.findLocked(kindPred, fp, minC); ok {
		return c.links[i].b, true
	}
	return Fingerprint{}, false
}

// nextLocked is the chunk stored after chunk i of c (maybe in the next
// container).
func (s *Store) nextLocked(c *container, i uint32) (chunkEntry, bool) {
	if int(i)+1 < len(c.chunks) {
		return c.chunks[i+1], true
	}
	n := s.tabLocked(c.id + 1)
	if n == nil || len(n.chunks) == 0 {
		return chunkEntry{}, false
	}
	return n.chunks[0], true
}

// prevLocked is the chunk stored before chunk i of c.
func (s *Store) prevLocked(c *container, i uint32) (chunkEntry, bool) {
	if i > 0 {
		return c.chunks[i-1], true
	}
	if c.id == 0 {
		return chunkEntry{}, false
	}
	p := s.tabLocked(c.id - 1)
	if p == nil || len(p.chunks) == 0 {
		return chunkEntry{}, false
	}
	return p.chunks[len(p.chunks)-1], true
}

// Link records that b followed a: a's successor and b's predecessor, each
// unless already set. When b was stored right after a, and neither has a
// link yet, a flag on b says so; otherwise link entries go into the open
// container.
func (s *Store) Link(a, b Fingerprint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	_, hasSucc := s.succLocked(a)
	_, hasPred := s.predLocked(b)
	if hasSucc && hasPred {
		return
	}
	if !hasSucc && !hasPred && s.open != nil {
		if c, i, ok := s.findLocked(kindChunk, b, s.open.id); ok && c == s.open {
			if p, ok := s.prevLocked(c, i); ok && p.fp == a {
				c.chunks[i].flags |= flagFollows
				c.dirty = true
				return
			}
		}
	}
	if !hasSucc {
		s.appendLinkLocked(a, b, kindSucc)
	}
	if !hasPred {
		s.appendLinkLocked(b, a, kindPred)
	}
}

func (s *Store) appendLinkLocked(a, b Fingerprint, kind uint8) {
	s.roomLocked(0)
	c := s.open
	c.links = append(c.links, linkEntry{a: a, b: b, kind: kind})
	c.dirty = true
	s.cache.set(tableKey(kind, a.short()), loc{c: c.id, kind: kind, i: uint32(len(c.links) - 1)})
}

// sealLocked writes the open container, indexes it and evicts the oldest
// containers past the capacity. A container that cannot be written is
// dropped with its chunks (a cache may forget).
func (s *Store) sealLocked() {
	c := s.open
	s.open = nil
	if c == nil {
		return
	}
	if len(c.chunks)+len(c.links) == 0 {
		s.spare = c.data
		return
	}
	b := c.encode()
	if err := s.files.write(c.id, b, false); err != nil {
		s.cnt.writeErrors++
		s.cfg.Logger.Warn("chunk store: cannot write a container; its chunks are dropped", "container", c.id, "err", err)
		s.cache.forget(c)
		s.spare = c.data
		return
	}
	s.spare, c.data = c.data[:0], nil
	c.size, c.dirty = int64(len(b)), false
	logical := c.logical()
	ci := cinfo{size: c.size, file: c.size, chunks: int32(len(c.chunks)), logical: logical, pos: s.stored}
	s.stored += logical
	if s.cfg.dataless {
		ci.size = logical
	}
	s.info[c.id] = ci
	s.ids = append(s.ids, c.id)
	s.bytes += ci.size
	s.chunks += int64(len(c.chunks))
	s.unsynced = append(s.unsynced, c.id)
	if err := s.indexLocked(c); err != nil {
		s.cfg.Logger.Warn("chunk store: cannot index a container", "container", c.id, "err", err)
	}
	s.cache.add(c)
	s.evictLocked()
}

// evictLocked removes the oldest containers while the store, with room
// for a full open container, is over its capacity (the fingerprint table
// counts against it too).
func (s *Store) evictLocked() {
	budget, reserve := s.budgetLocked()
	for len(s.ids) > 0 {
		if s.bytes+reserve <= budget {
			return
		}
		id := s.ids[0]
		s.cnt.evictedBytes += uint64(s.info[id].file)
		s.cnt.evictedContainers++
		s.dropContainerLocked(id)
	}
}

// Save makes the store durable: the open container is written (it stays
// open), the containers sealed since the last Save, the folder and the
// index are fsynced, and the index header records that they are indexed.
// A crash loses at most what came after. No-op for a memory-only store.
func (s *Store) Save() error {
	s.ckpt.Lock()
	defer s.ckpt.Unlock()
	return s.save(false)
}

func (s *Store) save(seal bool) error {
	s.mu.Lock()
	if s.closed || s.cfg.Dir == "" {
		s.mu.Unlock()
		return nil
	}
	var err error
	if seal {
		s.sealLocked()
	} else if c := s.open; c != nil && c.dirty && len(c.chunks)+len(c.links) > 0 {
		if err = s.files.write(c.id, c.encode(), true); err == nil {
			c.dirty = false
		}
	}
	ids := s.unsynced
	s.unsynced = nil
	synced := s.next - 1
	if s.open != nil {
		synced = s.open.id - 1
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.files.syncAll(ids); err != nil {
		return err
	}
	if err := s.tbl.sync(); err != nil {
		return err
	}
	if err := s.tbl.writeHeader(tableHeader{buckets: s.tbl.buckets, synced: synced}); err != nil {
		return err
	}
	if err := s.tbl.sync(); err != nil {
		return err
	}
	if s.peer != nil {
		return s.peer.st.Save()
	}
	return nil
}

// Close seals the open container, makes the store durable and releases
// its folder. The store is unusable afterwards.
func (s *Store) Close() error {
	s.ckpt.Lock()
	defer s.ckpt.Unlock()
	err := s.save(true)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.peer != nil {
		if perr := s.peer.st.Close(); err == nil {
			err = perr
		}
	}
	s.closeFiles()
	return err
}

func (s *Store) closeFiles() {
	if s.files != nil {
		_ = s.files.close()
	}
	if s.tbl != nil {
		_ = s.tbl.close()
	}
	if s.lockf != nil {
		_ = s.lockf.Close()
	}
}

// atomicCounters are the counters updated outside the lock.
type atomicCounters struct {
	hits, misses, corrupt atomic.Uint64
}
