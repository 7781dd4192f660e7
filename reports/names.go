package reports

// Metric names that reports, dashboards, alert rules and scripts rely on.
// Daemons register them under these names (with the labels noted); the full
// list with types and units is docs/metrics.md.
const (
	// MetricSrcData (gauge, bytes, {volume}, src): Src Data, bytes of sealed and
	// open journal files waiting in the source buffer.
	MetricSrcData = "aimwan_src_data_bytes"
	// MetricSrcBufferCapacity (gauge, bytes, src): size limit of the source buffer.
	MetricSrcBufferCapacity = "aimwan_src_buffer_capacity_bytes"
	// MetricTimeLatency (gauge, seconds, {volume}, dst): Time Latency, now minus
	// the source timestamp of the newest destaged write.
	MetricTimeLatency = "aimwan_time_latency_seconds"
	// MetricDstDestaged (counter, bytes, {volume}, dst): logical bytes destaged
	// (applied to the destination volume): the effective transfer.
	MetricDstDestaged = "aimwan_dst_destaged_bytes_total"
	// MetricDstVolumeOnline (gauge, 0/1, {volume}, dst): 1 while the
	// destination volume is open and destaging.
	MetricDstVolumeOnline = "aimwan_dst_volume_online"
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
	// schedule allows now (+Inf when unlimited, 0 when paused).
	MetricProxyScheduleCap = "aimwan_proxy_schedule_cap_bytes_per_second"
	// MetricProxyPeerUp (gauge, 0/1, proxy): 1 while the WAN session to the
	// peer proxy is up.
	MetricProxyPeerUp = "aimwan_proxy_peer_up"
	// MetricLinkBytes (counter, bytes, {direction}, sim link): bytes the link
	// simulator delivered; direction is "forward" or "reverse".
	MetricLinkBytes = "aimwan_link_bytes_total"
	// MetricLinkDrops (counter, packets, {direction}, sim link).
	MetricLinkDrops = "aimwan_link_drops_total"
)
