package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/dedupe"
)

// storeCollector exports the figures of a chunk store (store="chunks") or
// of the source edge's index of the peer's store (store="peer_index"),
// read at scrape time. See docs/metrics.md.
type storeCollector []storeSource

// storeSource is one store a storeCollector reads.
type storeSource struct {
	label string
	stats func() dedupe.StoreStats
}

var (
	storeLabels      = []string{"store"}
	descStoreBytes   = prometheus.NewDesc("aimwan_proxy_store_bytes", "Bytes the store holds: containers on disk (or in memory for a memory-only store), the open one included; for the peer index, the chunk bytes it believes the peer holds.", storeLabels, nil)
	descStoreCap     = prometheus.NewDesc("aimwan_proxy_store_capacity_bytes", "Configured capacity of the store (cache_size); the oldest containers are evicted past it.", storeLabels, nil)
	descStoreConts   = prometheus.NewDesc("aimwan_proxy_store_containers", "Containers in the store, the open one included.", storeLabels, nil)
	descStoreChunks  = prometheus.NewDesc("aimwan_proxy_store_chunks", "Chunks the store holds.", storeLabels, nil)
	descStoreIndex   = prometheus.NewDesc("aimwan_proxy_store_index_bytes", "Size of the store's fingerprint table (on disk for a store in a folder).", storeLabels, nil)
	descStoreRAM     = prometheus.NewDesc("aimwan_proxy_store_index_ram_bytes", "Memory of the store's index: cached container tables and the open container's buffer.", storeLabels, nil)
	descStoreLookups = prometheus.NewDesc("aimwan_proxy_store_lookups_total", "Chunk reads from the store, by result (hit, miss, corrupt: bytes that did not match their fingerprint).", []string{"store", "result"}, nil)
	descStoreReads   = prometheus.NewDesc("aimwan_proxy_store_disk_reads_total", "Reads from the store's files, by kind: index (fingerprint-table buckets), table (container tables, the prefetch), chunk (chunk bytes), rebuild (container tables read at start-up to re-index).", []string{"store", "kind"}, nil)
	descStoreEvBytes = prometheus.NewDesc("aimwan_proxy_store_evicted_bytes_total", "Bytes of containers evicted (oldest first) to stay within the capacity.", storeLabels, nil)
	descStoreEvConts = prometheus.NewDesc("aimwan_proxy_store_evicted_containers_total", "Containers evicted to stay within the capacity.", storeLabels, nil)
	descStoreRefresh = prometheus.NewDesc("aimwan_proxy_store_refreshed_chunks_total", "Chunks stored again in the newest container because a stream used them near the eviction end (a template's chunks under its clones stay in the store); the peer index counts the same for its belief.", storeLabels, nil)
	descStoreWErr    = prometheus.NewDesc("aimwan_proxy_store_write_errors_total", "Containers that could not be written (their chunks were dropped from the cache).", storeLabels, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStoreBytes, descStoreCap, descStoreConts, descStoreChunks, descStoreIndex,
		descStoreRAM, descStoreLookups, descStoreReads, descStoreEvBytes, descStoreEvConts, descStoreRefresh, descStoreWErr} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, src := range c {
		src.collect(ch)
	}
}

func (c storeSource) collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{c.label}, l...)...)
	}
	n := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{c.label}, l...)...)
	}
	g(descStoreBytes, float64(s.Bytes))
	g(descStoreCap, float64(s.Capacity))
	g(descStoreConts, float64(s.Containers))
	g(descStoreChunks, float64(s.Chunks))
	g(descStoreIndex, float64(s.IndexBytes))
	g(descStoreRAM, float64(s.IndexRAMBytes))
	n(descStoreLookups, s.Hits, "hit")
	n(descStoreLookups, s.Misses-min(s.Misses, s.Corrupt), "miss")
	n(descStoreLookups, s.Corrupt, "corrupt")
	n(descStoreReads, s.TableReads, "index")
	n(descStoreReads, s.ContainerReads, "table")
	n(descStoreReads, s.ChunkReads, "chunk")
	n(descStoreReads, s.RebuildReads, "rebuild")
	n(descStoreEvBytes, s.EvictedBytes)
	n(descStoreEvConts, s.EvictedContainers)
	n(descStoreRefresh, s.Refreshed)
	n(descStoreWErr, s.WriteErrors)
}

// registerStores exports the stores' figures (no-op without a registerer).
func registerStores(reg prometheus.Registerer, stores ...storeSource) error {
	if reg == nil {
		return nil
	}
	return reg.Register(storeCollector(stores))
}
