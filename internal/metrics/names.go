package metrics

// Metric names of every aimwan daemon. Daemons register their metrics under
// these constants (with the labels noted) and readers (reports, the bench,
// the sizing model) look them up by the same constants, so a name is written
// once. docs/metrics.md lists them all with types and units; KnownMetrics
// holds the ones reports, dashboards, alert rules and scripts rely on.
const (
	// SrcData (gauge, bytes, {volume}, src): Src Data, bytes of sealed and
	// open journal files waiting in the source buffer.
	SrcData = "aimwan_src_data_bytes"
	// SrcBufferLimit (gauge, bytes, src): configured size limit of the
	// source buffer (0: none).
	SrcBufferLimit = "aimwan_src_buffer_limit_bytes"
	// SrcOldestUnsent (gauge, seconds, {volume}, src): age of the oldest
	// journaled write not yet acked by the far end.
	SrcOldestUnsent = "aimwan_src_oldest_unsent_seconds"
	// SrcTimeLatency (gauge, seconds, {volume}, src): Time Latency seen from
	// the source: now minus the source time of the oldest record (a write,
	// or a heartbeat's watermark) not yet acked by the far end; 0 when
	// nothing waits.
	SrcTimeLatency = "aimwan_src_time_latency_seconds"
	// SrcRate (gauge, bytes/s, {volume}, src): recent ack rate, bytes of
	// journal files acked per second over the last rate window.
	SrcRate = "aimwan_src_rate_bytes_per_second"
	// SrcETA (gauge, seconds, {volume}, src): time to send what waits at the
	// recent ack rate (Src Data / rate); 0 when nothing waits, -1 when
	// something waits and nothing was acked lately.
	SrcETA = "aimwan_src_eta_seconds"
	// SrcHeartbeats (counter, files, {volume}, src): heartbeat files sealed
	// (an idle volume's watermark).
	SrcHeartbeats = "aimwan_src_heartbeats_total"
	// SrcFilesWaiting (gauge, files, {volume}, src): sealed journal files not
	// yet acked.
	SrcFilesWaiting = "aimwan_src_files_waiting"
	// SrcDirty (gauge, bytes, {volume}, src): volume bytes marked in the
	// dirty bitmap.
	SrcDirty = "aimwan_src_dirty_bytes"
	// SrcState (gauge, 0/1, {volume, state}, src): 1 for the volume's state.
	SrcState = "aimwan_src_state"
	// SrcInitPercent (gauge, percent, {volume}, src): initialize progress.
	SrcInitPercent = "aimwan_src_init_percent"
	// SrcWritesCaptured (counter, writes, {volume}, src).
	SrcWritesCaptured = "aimwan_src_writes_captured_total"
	// SrcBytesCaptured (counter, bytes, {volume}, src): data bytes captured.
	SrcBytesCaptured = "aimwan_src_bytes_captured_total"
	// SrcFilesShipped (counter, files, {volume}, src): files acked and deleted.
	SrcFilesShipped = "aimwan_src_files_shipped_total"
	// SrcBytesShipped (counter, bytes, {volume}, src): bytes of files acked.
	SrcBytesShipped = "aimwan_src_bytes_shipped_total"
	// SrcCoalescedBytes (counter, bytes, {volume}, src): payload dropped by
	// write coalescing.
	SrcCoalescedBytes = "aimwan_src_coalesced_bytes_total"
	// SrcCoalesceRecordsIn / SrcCoalesceRecordsOut (counters, records,
	// {volume}, src): records of coalesced files before and after.
	SrcCoalesceRecordsIn  = "aimwan_src_coalesce_records_in_total"
	SrcCoalesceRecordsOut = "aimwan_src_coalesce_records_out_total"
	// SrcScheduledMarkers (counter, markers, {target, result}, src): slots
	// of scheduled snapshot markers, by result (placed, skipped, failed);
	// target is the volume or "group:NAME".
	SrcScheduledMarkers = "aimwan_src_scheduled_markers_total"

	// TimeLatency (gauge, seconds, {volume}, dst): Time Latency, now minus
	// the source time up to which the destination volume is complete (the
	// watermark of the newest destaged record, a heartbeat's on an idle
	// volume): about 0 when caught up, growing while something is
	// unreplicated or the source is unreachable; 0 before the first file.
	TimeLatency = "aimwan_time_latency_seconds"
	// DstCompleteUntil (gauge, Unix seconds, {volume}, dst): the source time
	// up to which the destination volume is complete.
	DstCompleteUntil = "aimwan_dst_complete_until_timestamp_seconds"
	// DstLastMarker / DstLastSnapshot (gauges, Unix seconds, {volume}, dst):
	// source time of the last marker passed / snapshot taken (0: none).
	DstLastMarker   = "aimwan_dst_last_marker_timestamp_seconds"
	DstLastSnapshot = "aimwan_dst_last_snapshot_timestamp_seconds"
	// GroupTimeLatency (gauge, seconds, {group}, dst): Time Latency of a
	// consistency group, now minus the oldest of its members' complete-until
	// times.
	GroupTimeLatency = "aimwan_group_time_latency_seconds"
	// DstGroupConsistentPoint / DstGroupLastSnapshot (gauges, Unix seconds,
	// {group}, dst): source time of the group's last point taken on every
	// member / of its last group snapshot (0: none).
	DstGroupConsistentPoint = "aimwan_dst_group_consistent_point_timestamp_seconds"
	DstGroupLastSnapshot    = "aimwan_dst_group_last_snapshot_timestamp_seconds"
	// DstLogical (counter, bytes, {volume}, dst): bytes of writes destaged to
	// the destination volume: the effective (logical) transfer.
	DstLogical = "aimwan_dst_logical_bytes_total"
	// DstVolumeOffline (gauge, 0/1, {volume}, dst): 1 while the destination
	// volume is offline (missing, read-only, full).
	DstVolumeOffline = "aimwan_dst_volume_offline"
	// DstBuffer (gauge, bytes, {volume}, dst): bytes held in the destination
	// buffer, not yet destaged.
	DstBuffer = "aimwan_dst_buffer_bytes"
	// DstBufferLimit (gauge, bytes, dst): configured destination buffer limit.
	DstBufferLimit = "aimwan_dst_buffer_limit_bytes"
	// DstDestagedSeq (gauge, sequence, {volume}, dst): last record destaged.
	DstDestagedSeq = "aimwan_dst_destaged_seq"
	// DstFilesWaiting (gauge, files, {volume}, dst): files waiting for destage.
	DstFilesWaiting = "aimwan_dst_files_waiting"
	// DstFilesReceived, DstFilesDestaged, DstDuplicateFiles,
	// DstBufferFullRefusals, DstSnapshots, DstHookFailures (counters,
	// {volume}, dst).
	DstFilesReceived      = "aimwan_dst_files_received_total"
	DstFilesDestaged      = "aimwan_dst_files_destaged_total"
	DstDuplicateFiles     = "aimwan_dst_duplicate_files_total"
	DstBufferFullRefusals = "aimwan_dst_buffer_full_refusals_total"
	DstSnapshots          = "aimwan_dst_snapshots_total"
	DstHookFailures       = "aimwan_dst_hook_failures_total"
	// DstSnapshotsHeld (gauge, snapshots, {volume}, dst): snapshots in the
	// snapshot folder now.
	DstSnapshotsHeld = "aimwan_dst_snapshots_held"
	// DstSnapshotBytes (gauge, bytes, {volume}, dst): bytes the snapshots'
	// blocks take (st_blocks: a reflink's shared extents count in full).
	DstSnapshotBytes = "aimwan_dst_snapshot_bytes"
	// DstSnapshotsPruned (counter, snapshots, {volume}, dst): snapshots
	// deleted by retention.
	DstSnapshotsPruned = "aimwan_dst_snapshots_pruned_total"
	// DstRefusedFiles (counter, files, {volume, reason}, dst): journal files
	// refused or quarantined because they do not belong to the volume's
	// stream or sequence (reason: stream, mismatch, unverified, sequence,
	// superseded).
	DstRefusedFiles = "aimwan_dst_refused_files_total"
	// DstQuarantined (gauge, files, {volume}, dst): files kept in the
	// volume's quarantine folder for the operator.
	DstQuarantined = "aimwan_dst_quarantined_files"
	// DstPromoted (gauge, 0/1, {volume}, dst): 1 once the volume is
	// promoted (failover): writable, destage stopped, files refused.
	DstPromoted = "aimwan_dst_volume_promoted"
	// DstRebinds (counter, {volume}, dst): times an initialize's new stream
	// replaced the stream a volume replicated.
	DstRebinds = "aimwan_dst_rebinds_total"
	// DstChecksumBytes (counter, bytes, {volume}, dst): volume bytes read and
	// hashed to answer checksum requests (a delta initialize).
	DstChecksumBytes = "aimwan_dst_checksum_bytes_total"
	// SrcInitJournaled (gauge, bytes, {volume}, src): data bytes the running
	// or last initialize journaled (a delta initialize: the blocks that
	// differ at the destination).
	SrcInitJournaled = "aimwan_src_init_journaled_bytes"
	// SrcInitSaved (gauge, bytes, {volume}, src): volume bytes the running or
	// last delta initialize compared equal and so did not send.
	SrcInitSaved = "aimwan_src_init_saved_bytes"
	// SrcInitChecksum (gauge, bytes, {volume}, src): bytes of the checksum
	// exchange (SUM requests and SUMS answers) of the running or last delta
	// initialize.
	SrcInitChecksum = "aimwan_src_init_checksum_bytes"
	// DstPartsExpired (counter, files, {volume}, dst): partial files removed
	// after nobody resumed them for the expiry time.
	DstPartsExpired = "aimwan_dst_parts_expired_total"
	// DstGroupErrors (counter, {group, reason}, dst): group markers that
	// could not be taken on every member (reason: member-missing,
	// no-members, reused-id).
	DstGroupErrors = "aimwan_dst_group_errors_total"
	// SrcPushRefusals (counter, {volume, code}, src): pushes the next hop
	// refused with a verdict that needs an operator (conflict, bad-offer,
	// unknown-volume).
	SrcPushRefusals = "aimwan_src_push_refusals_total"
	// SrcFilesSuperseded (counter, files, {volume}, src): journal files of an
	// old stream dropped at the source because the destination refused them
	// and an initialize supersedes them.
	SrcFilesSuperseded = "aimwan_src_files_superseded_total"
	// SrcPaused (gauge, 0/1, {volume}, src): 1 while pushing the volume is
	// paused (aimwan src pause).
	SrcPaused = "aimwan_src_paused"
	// SrcLinkUp (gauge, 0/1, src): 1 while the connection to the next hop
	// is up and its pushes are not failing; SrcLinkDownSeconds (gauge,
	// seconds, src) how long it has been down (0 while up).
	SrcLinkUp          = "aimwan_src_link_up"
	SrcLinkDownSeconds = "aimwan_src_link_down_seconds"

	// Every proxy metric carries the label LabelRole (source or destination).

	// ProxyLogical (counter, bytes, {role}, proxy): journal-file bytes the
	// proxy was given to carry.
	ProxyLogical = "aimwan_proxy_logical_bytes_total"
	// ProxyWire (counter, bytes, {role}, proxy): bytes the proxy put on the WAN,
	// after dedupe and compression, framing included.
	ProxyWire = "aimwan_proxy_wire_bytes_total"
	// ProxyCacheHits / ProxyCacheMisses (counters, chunks, proxy).
	ProxyCacheHits   = "aimwan_proxy_cache_hits_total"
	ProxyCacheMisses = "aimwan_proxy_cache_misses_total"
	// ProxyRefMisses (counter, references, proxy): references the destination
	// could not resolve and asked back.
	ProxyRefMisses = "aimwan_proxy_ref_misses_total"
	// ProxyResent (counter, bytes, proxy): bytes sent again for misses.
	ProxyResent = "aimwan_proxy_resent_bytes_total"
	// ProxyMissWaits (counter, files, proxy): files that waited for files
	// accepted before them to be decoded first (the destination edge decodes
	// in encode order).
	ProxyMissWaits = "aimwan_proxy_miss_waits_total"
	// ProxyFiles (counter, files, {result}, proxy): files handled.
	ProxyFiles = "aimwan_proxy_files_total"
	// ProxyFilesInFlight (gauge, files, proxy): accepted, not yet acked.
	ProxyFilesInFlight = "aimwan_proxy_files_in_flight"
	// ProxyWANQueue (gauge, bytes, proxy): encoded bytes waiting for the WAN.
	ProxyWANQueue = "aimwan_proxy_wan_queue_bytes"
	// ProxyCompressionLevel (gauge, level, proxy): literal level in use.
	ProxyCompressionLevel = "aimwan_proxy_compression_level"
	// ProxyEncodedFiles (counter, files, {level}, proxy): files encoded.
	ProxyEncodedFiles = "aimwan_proxy_encoded_files_total"
	// ProxyScheduleCap (gauge, bytes/s, proxy): the rate the throttle
	// schedule allows now (-1 or +Inf when unlimited, 0 when paused).
	ProxyScheduleCap = "aimwan_proxy_schedule_cap_bytes_per_second"
	// ProxyPeerUp (gauge, 0/1, proxy): 1 while the WAN session to the peer
	// proxy is up.
	ProxyPeerUp = "aimwan_proxy_peer_up"
	// ProxyPeerRTT (gauge, seconds, {peer, conn}, proxy): smoothed RTT of a
	// WAN connection; ProxyPeerQUICReceived (counter, bytes, {peer, conn},
	// proxy) bytes received on it (transport.StatsCollector).
	ProxyPeerRTT          = "aimwan_proxy_peer_rtt_seconds"
	ProxyPeerQUICReceived = "aimwan_proxy_peer_quic_received_bytes_total"
	// ProxyStoreBytes / ProxyStoreCapacity (gauges, bytes, {store}, proxy):
	// what a chunk store holds and its capacity (store "chunks").
	ProxyStoreBytes    = "aimwan_proxy_store_bytes"
	ProxyStoreCapacity = "aimwan_proxy_store_capacity_bytes"

	// The source edge's WAN rate controller (transport.PoolCollector), all
	// labelled {peer}:
	// ProxyWANBottleneck (gauge, bytes/s): the measured bottleneck rate.
	ProxyWANBottleneck = "aimwan_proxy_wan_bottleneck_bytes_per_second"
	// ProxyWANDelivery (gauge, bytes/s): the latest delivery-rate sample.
	ProxyWANDelivery = "aimwan_proxy_wan_delivery_bytes_per_second"
	// ProxyWANPacing (gauge, bytes/s): the pace, before the schedule's cap.
	ProxyWANPacing = "aimwan_proxy_wan_pacing_bytes_per_second"
	// ProxyWANBaseRTT (gauge, seconds): the measured round trip without queue.
	ProxyWANBaseRTT = "aimwan_proxy_wan_base_rtt_seconds"
	// ProxyWANRTT (gauge, seconds): QUIC's latest round trip.
	ProxyWANRTT = "aimwan_proxy_wan_rtt_seconds"
	// ProxyWANQueueDelay (gauge, seconds): round trip above the base RTT.
	ProxyWANQueueDelay = "aimwan_proxy_wan_queue_delay_seconds"
	// ProxyWANInflight (gauge, bytes): part bytes sent, not yet acknowledged.
	ProxyWANInflight = "aimwan_proxy_wan_inflight_bytes"
	// ProxyWANConns (gauge, connections): live QUIC connections to the peer.
	ProxyWANConns = "aimwan_proxy_wan_connections"
	// ProxyWANConnsWanted (gauge, connections): connections the pool keeps up.
	ProxyWANConnsWanted = "aimwan_proxy_wan_connections_wanted"
	// ProxyWANLanes (gauge, connections): connections writing parts at once.
	ProxyWANLanes = "aimwan_proxy_wan_lanes_active"
	// ProxyWANState (gauge, 0/1, {peer, state}): controller state (startup, steady).
	ProxyWANState = "aimwan_proxy_wan_state"
	// ProxyWANBackoffs (counter, times): standing queues that made the sender back off.
	ProxyWANBackoffs = "aimwan_proxy_wan_backoffs_total"
	// ProxyWANProbes (counter, times): base-RTT probes.
	ProxyWANProbes = "aimwan_proxy_wan_probes_total"
	// ProxyWANBandwidthProbes (counter, times): windows the pace was raised
	// above the estimate to find room the path may have (the delivery rate
	// followed the pace, no queue stood).
	ProxyWANBandwidthProbes = "aimwan_proxy_wan_bandwidth_probes_total"
	// ProxyWANRetries (counter, parts): parts sent again after their stream failed.
	ProxyWANRetries = "aimwan_proxy_wan_part_retries_total"

	// LinkBytes (counter, bytes, {direction}, sim link): payload bytes the
	// link simulator carried; direction DirectionUp (toward --to, the data)
	// or DirectionDown.
	LinkBytes = "aimwan_link_bytes_total"
	// LinkPackets (counter, packets, {direction}, sim link).
	LinkPackets = "aimwan_link_packets_total"
	// LinkCrossBytes (counter, bytes, {direction}, sim link): cross traffic.
	LinkCrossBytes = "aimwan_link_cross_bytes_total"
	// LinkCrossDropped (counter, bytes, {direction}, sim link): cross
	// traffic dropped because the queue was full (kept rate = carried /
	// (carried + dropped)).
	LinkCrossDropped = "aimwan_link_cross_dropped_bytes_total"
	// LinkDrops (counter, packets, {reason}, sim link): packets dropped, by
	// reason (queue, loss, outage, cross).
	LinkDrops = "aimwan_link_drops_total"
	// LinkQueue (gauge, bytes, {direction}, sim link): bytes at the bottleneck.
	LinkQueue = "aimwan_link_queue_bytes"

	// PushRefusedPeers (counter, peers, {fingerprint}, src, dst, proxy):
	// peers refused during the TLS handshake of a push leg, by certificate
	// fingerprint; "none" for peers without one (not TLS, no certificate,
	// handshake timed out), "other" past the 32 fingerprints named.
	PushRefusedPeers = "aimwan_push_refused_peers_total"
	// BuildInfo (gauge, always 1, {version, revision, goversion}, every
	// daemon, served with RuntimeGatherer): which build of aimwan runs
	// (package internal/version).
	BuildInfo = "aimwan_build_info"

	// RecorderSamples / RecorderErrors (counters, samples, any daemon with a
	// Recorder given a Registerer).
	RecorderSamples = "aimwan_recorder_samples_total"
	RecorderErrors  = "aimwan_recorder_errors_total"
)

// LabelRole labels every metric of a proxy with the edge that exports it,
// RoleSource or RoleDestination: both edges count the files they carry, so
// a sum over both would count each file twice. Data reduction is the source
// edge's logical bytes over its wire bytes.
const (
	LabelRole       = "role"
	RoleSource      = "source"      // the source edge: accepts src's pushes, sends over the WAN
	RoleDestination = "destination" // the destination edge: accepts the WAN, pushes to dst
)

// Values of the direction label of the link metrics.
const (
	DirectionUp   = "up"   // the data direction, toward the link's --to
	DirectionDown = "down" // the answers, back
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
	{SrcData, Gauge, []string{"volume"}, "bytes", "src", "Src Data: bytes waiting in the source buffer (sealed and open journal files)."},
	{SrcBufferLimit, Gauge, nil, "bytes", "src", "Configured source buffer limit (0: none)."},
	{TimeLatency, Gauge, []string{"volume"}, "seconds", "dst", "Time Latency: now minus the source time up to which the destination volume is complete (about 0 when caught up, also when idle)."},
	{GroupTimeLatency, Gauge, []string{"group"}, "seconds", "dst", "Time Latency of a consistency group: now minus the oldest member's complete-until time."},
	{SrcTimeLatency, Gauge, []string{"volume"}, "seconds", "src", "Time Latency at the source: now minus the source time of the oldest record not yet acked (0 when nothing waits)."},
	{SrcRate, Gauge, []string{"volume"}, "bytes/s", "src", "Recent ack rate: bytes of journal files acked per second."},
	{SrcETA, Gauge, []string{"volume"}, "seconds", "src", "Time to send what waits at the recent ack rate; 0 when nothing waits, -1 when unknown."},
	{DstLogical, Counter, []string{"volume"}, "bytes", "dst", "Bytes of writes destaged to the destination volume."},
	{DstVolumeOffline, Gauge, []string{"volume"}, "boolean", "dst", "1 while the destination volume is offline (missing, read-only, full)."},
	{DstBuffer, Gauge, []string{"volume"}, "bytes", "dst", "Bytes held in the destination buffer, not yet destaged."},
	{ProxyLogical, Counter, []string{LabelRole}, "bytes", "proxy", "Journal-file bytes the proxy was given to carry."},
	{ProxyWire, Counter, []string{LabelRole}, "bytes", "proxy", "Bytes the proxy put on the WAN, after dedupe and compression, framing included."},
	{ProxyCacheHits, Counter, []string{LabelRole}, "chunks", "proxy", "Chunks sent as references to the peer's cache."},
	{ProxyCacheMisses, Counter, []string{LabelRole}, "chunks", "proxy", "Chunks sent as literals (not known to the peer)."},
	{ProxyScheduleCap, Gauge, []string{LabelRole}, "bytes/s", "proxy", "WAN rate cap of the schedule in force; -1 (or +Inf) = unlimited, 0 = paused."},
	{ProxyPeerUp, Gauge, []string{LabelRole}, "boolean", "proxy", "1 while the WAN session to the peer proxy is up."},
	{LinkBytes, Counter, []string{"direction"}, "bytes", "link", "Payload bytes carried by the simulated link, by direction (up: toward --to)."},
	{LinkDrops, Counter, []string{"reason"}, "packets", "link", "Packets dropped by the simulated link, by reason (queue, loss, outage, cross)."},
	{LinkCrossBytes, Counter, []string{"direction"}, "bytes", "link", "Cross-traffic bytes that took their turn on the line, by direction."},
	{LinkCrossDropped, Counter, []string{"direction"}, "bytes", "link", "Cross-traffic bytes dropped because the queue was full, by direction."},
	{ProxyWANBottleneck, Gauge, []string{"peer", LabelRole}, "bytes/s", "proxy", "Measured bottleneck rate of the WAN path (source edge)."},
	{ProxyWANPacing, Gauge, []string{"peer", LabelRole}, "bytes/s", "proxy", "Pace of the WAN rate controller, before the schedule's cap (source edge)."},
	{ProxyWANBaseRTT, Gauge, []string{"peer", LabelRole}, "seconds", "proxy", "Measured round trip of the WAN path without queue (source edge)."},
	{ProxyWANQueueDelay, Gauge, []string{"peer", LabelRole}, "seconds", "proxy", "Round trip above the base RTT: the bottleneck's queue (source edge)."},
	{ProxyWANConns, Gauge, []string{"peer", LabelRole}, "connections", "proxy", "Live QUIC connections to the peer (source edge)."},
	{BuildInfo, Gauge, []string{"version", "revision", "goversion"}, "boolean", "any", "Build of aimwan running: version, VCS revision and Go version as labels; always 1."},
	{RecorderSamples, Counter, nil, "samples", "any", "Samples appended to the JSONL recording."},
	{RecorderErrors, Counter, nil, "samples", "any", "Samples that could not be gathered completely or written."},
}
