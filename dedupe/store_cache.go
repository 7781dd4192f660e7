package dedupe

import "container/list"

// cache holds the tables of recently used containers and, for them and
// the open container, a map from salted short fingerprint to entry: the
// locality-preserved cache of the Data Domain file system. A lookup that
// hits a container loads that container's whole table, so the chunks
// stored around it — the ones a stream asks for next — are found without
// another disk read. Bounded by entries, not by the store's size.
type cache struct {
	max  int // entries of cached sealed containers
	n    int
	tabs map[uint32]*list.Element // value: *container
	lru  *list.List               // front = most recent
	idx  map[uint64]loc
}

// cacheEntryRAM is the memory estimate of one cached entry: the entry in
// its container's slice plus its map slot.
const cacheEntryRAM = 96

func newCache(max int) cache {
	return cache{max: max, tabs: map[uint32]*list.Element{}, lru: list.New(), idx: map[uint64]loc{}}
}

func (c *cache) ramBytes() uint64 { return uint64(len(c.idx)) * cacheEntryRAM }

// get returns a cached sealed container's table.
func (c *cache) get(id uint32) *container {
	el, ok := c.tabs[id]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*container)
}

// add caches a sealed container's table, evicting the least recently used
// ones past the bound.
func (c *cache) add(ct *container) {
	if _, ok := c.tabs[ct.id]; ok {
		return
	}
	c.tabs[ct.id] = c.lru.PushFront(ct)
	c.n += len(ct.chunks) + len(ct.links)
	c.remember(ct)
	for c.n > c.max && c.lru.Len() > 1 {
		c.drop(c.lru.Back().Value.(*container).id)
	}
}

// remember maps ct's entries, keeping entries of newer containers.
func (c *cache) remember(ct *container) {
	for i, e := range ct.chunks {
		c.set(tableKey(kindChunk, e.fp.short()), loc{c: ct.id, kind: kindChunk, i: uint32(i)})
	}
	for i, l := range ct.links {
		c.set(tableKey(l.kind, l.a.short()), loc{c: ct.id, kind: l.kind, i: uint32(i)})
	}
}

func (c *cache) set(k uint64, l loc) {
	if old, ok := c.idx[k]; ok && old.c > l.c {
		return
	}
	c.idx[k] = l
}

// drop removes a container from the cache.
func (c *cache) drop(id uint32) {
	el, ok := c.tabs[id]
	if !ok {
		return
	}
	ct := el.Value.(*container)
	c.lru.Remove(el)
	delete(c.tabs, id)
	c.n -= len(ct.chunks) + len(ct.links)
	c.forget(ct)
}

// forget unmaps ct's entries.
func (c *cache) forget(ct *container) {
	for _, e := range ct.chunks {
		k := tableKey(kindChunk, e.fp.short())
		if l, ok := c.idx[k]; ok && l.c == ct.id {
			delete(c.idx, k)
		}
	}
	for _, ln := range ct.links {
		k := tableKey(ln.kind, ln.a.short())
		if l, ok := c.idx[k]; ok && l.c == ct.id {
			delete(c.idx, k)
		}
	}
}

// clear empties the cache.
func (c *cache) clear() { *c = newCache(c.max) }

// StoreMemory bounds the memory of an open store whose cache holds up to
// entries container-table entries (0: DefaultCacheEntries): the cache and
// the open container's data. It does not grow with the store's capacity.
func StoreMemory(entries int) int64 {
	if entries <= 0 {
		entries = DefaultCacheEntries
	}
	return int64(entries)*cacheEntryRAM + maxContainerBytes
}
