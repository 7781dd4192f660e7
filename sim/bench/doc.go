// Package bench is the seed experiment end to end: it starts the whole chain
// as real processes on loopback (src, source-edge proxy, link simulator,
// destination-edge proxy, dst) from the aimwan binary, creates VMs from a
// template by writing clone images through src's NBD export, runs a
// pass-through phase and then an optimized phase, verifies every destination
// volume against its source and writes result.json, phases.json and one
// JSONL recording per daemon for `aimwan report`.
//
// Glossary:
//
//   - line rate: the configured rate of the simulated WAN line (2 Mbit/s =
//     250 KB/s by default). Speed-ups are given over it, cross traffic
//     included, as the seed did.
//   - cross traffic: other users of the line (VoIP, 70 KB/s by default) that
//     compete in the link simulator's queue.
//   - logical bytes: bytes of writes destaged to the destination volumes
//     (dst's aimwan_dst_logical_bytes_total): what the replication achieved.
//   - wire bytes: bytes the source-edge proxy put on the WAN after dedupe
//     and compression, framing included (aimwan_proxy_wire_bytes_total); the
//     link's own counter (aimwan_link_bytes_total) adds IP/UDP headers.
//   - effective rate: logical bytes destaged per second of a phase.
//   - peak speed-up: the best effective rate over a 10-s window of the
//     optimized phase, divided by the line rate.
//   - Time Latency: now minus the time up to which the DR volume is
//     complete, the watermark of the newest destaged file (dst's
//     aimwan_time_latency_seconds; about 0 once caught up, also when idle);
//     the largest over the volumes.
//   - thick write: creating a VM writes every block of the clone image,
//     zeros included, as data (NBD_CMD_WRITE), as a hypervisor making an
//     eager-zeroed disk does; in pass-through those zeros cost line time.
//   - scale: a preset of sizes and phase lengths (tiny for CI, small for
//     `make demo`, full for a longer run).
package bench
