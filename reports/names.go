package reports

// Metric names that reports, dashboards, alert rules and scripts rely on.
// Daemons register them under these names (with the labels noted); the full
// list with types and units is docs/metrics.md.
const (
	// MetricSrcData (gauge, bytes, {volume}, src): Src Data, bytes of sealed and
	// open journal files waiting in the source buffer.
	MetricSrcData = "aimwan_src_data_bytes"
	// MetricSrcBufferLimit (gauge, bytes, src): configured size limit of the
	// source buffer (0: none).
	MetricSrcBufferLimit = "aimwan_src_buffer_limit_bytes"
	// MetricTimeLatency (gauge, seconds, {volume}, dst): Time Latency, now minus
	// the source timestamp of the newest destaged write.
	MetricTimeLatency = "aimwan_time_latency_seconds"
	// MetricDstDestaged (counter, bytes, {volume}, dst): bytes of writes
	// destaged to the destination volume: the effective (logical) transfer.
	MetricDstDestaged = "aimwan_dst_logical_bytes_total"
	// MetricDstVolumeOffline (gauge, 0/1, {volume}, dst): 1 while the
	// destination volume is offline (missing, read-only, full).
	MetricDstVolumeOffline = "aimwan_dst_volume_offline"
	// MetricDstBuffer (gauge, bytes, {volume}, dst): bytes held in the
	// destination buffer, not yet destaged.
	MetricDstBuffer = "aimwan_dst_buffer_bytes"
	// MetricProxyLogical (counter, bytes, proxy): journal-file bytes the proxy
	// was given to carry.
	MetricProxyLogical = "aimwan_proxy_logical_bytes_total"
	// MetricProxyWire (counter, bytes, proxy): bytes the proxy put on the WAN,
	// after dedupe and compression, framing included.
	MetricProxyWire = "aimwan_proxy_wire_bytes_total"
	// MetricProxyCacheHits / MetricProxyCacheMisses (counters, chunks, proxy).
	MetricProxyCacheHits   = "aimwan_proxy_cache_hits_total"
	MetricProxyCacheMisses = "aimwan_proxy_cache_misses_total"
	// MetricProxyScheduleCap (gauge, bytes/s, proxy): the rate the throttle
	// schedule allows now (-1 or +Inf when unlimited, 0 when paused).
	MetricProxyScheduleCap = "aimwan_proxy_schedule_cap_bytes_per_second"
	// MetricProxyPeerUp (gauge, 0/1, proxy): 1 while the WAN session to the
	// peer proxy is up.
	MetricProxyPeerUp = "aimwan_proxy_peer_up"
	// MetricLinkBytes (counter, bytes, {direction}, sim link): payload bytes the
	// link simulator carried; direction "up" (toward --to, the data) or "down".
	MetricLinkBytes = "aimwan_link_bytes_total"
	// MetricLinkDrops (counter, packets, {reason}, sim link): packets dropped,
	// by reason (queue, loss, outage, cross).
	MetricLinkDrops = "aimwan_link_drops_total"

	// LinkUp is the direction label value of the data direction of the link.
	LinkUp = "up"
)

// MetricType is a Prometheus metric type as docs/metrics.md names it.
type MetricType string

// The metric types the conventions use.
const (
	Counter MetricType = "counter"
	Gauge   MetricType = "gauge"
)

// MetricSpec describes one metric of the conventions: the reports, the Grafana
// dashboard and the alert rules depend on exactly these.
type MetricSpec struct {
	Name   string
	Type   MetricType
	Labels []string
	Unit   string // bytes, seconds, bytes/s, chunks, packets, boolean (0/1)
	Daemon string // which daemon exports it: src, dst, proxy, link (sim link), any
	Help   string
}

// KnownMetrics lists the metrics of the conventions (docs/metrics.md has the
// full table, including each daemon's own extra metrics).
var KnownMetrics = []MetricSpec{
	{MetricSrcData, Gauge, []string{"volume"}, "bytes", "src", "Src Data: bytes waiting in the source buffer (sealed and open journal files)."},
	{MetricSrcBufferLimit, Gauge, nil, "bytes", "src", "Configured source buffer limit (0: none)."},
	{MetricTimeLatency, Gauge, []string{"volume"}, "seconds", "dst", "Time Latency: now minus the source timestamp of the newest destaged write."},
	{MetricDstDestaged, Counter, []string{"volume"}, "bytes", "dst", "Bytes of writes destaged to the destination volume."},
	{MetricDstVolumeOffline, Gauge, []string{"volume"}, "boolean", "dst", "1 while the destination volume is offline (missing, read-only, full)."},
	{MetricDstBuffer, Gauge, []string{"volume"}, "bytes", "dst", "Bytes held in the destination buffer, not yet destaged."},
	{MetricProxyLogical, Counter, nil, "bytes", "proxy", "Journal-file bytes the proxy was given to carry."},
	{MetricProxyWire, Counter, nil, "bytes", "proxy", "Bytes the proxy put on the WAN, after dedupe and compression, framing included."},
	{MetricProxyCacheHits, Counter, nil, "chunks", "proxy", "Chunks sent as references to the peer's cache."},
	{MetricProxyCacheMisses, Counter, nil, "chunks", "proxy", "Chunks sent as literals (not known to the peer)."},
	{MetricProxyScheduleCap, Gauge, nil, "bytes/s", "proxy", "WAN rate cap of the schedule in force; -1 (or +Inf) = unlimited, 0 = paused."},
	{MetricProxyPeerUp, Gauge, nil, "boolean", "proxy", "1 while the WAN session to the peer proxy is up."},
	{MetricLinkBytes, Counter, []string{"direction"}, "bytes", "link", "Payload bytes carried by the simulated link, by direction (up: toward --to)."},
	{MetricLinkDrops, Counter, []string{"reason"}, "packets", "link", "Packets dropped by the simulated link, by reason (queue, loss, outage, cross)."},
	{"aimwan_recorder_samples_total", Counter, nil, "samples", "any", "Samples appended to the JSONL recording."},
	{"aimwan_recorder_errors_total", Counter, nil, "samples", "any", "Samples that could not be gathered completely or written."},
}
