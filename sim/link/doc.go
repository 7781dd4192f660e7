// Package link is a userspace WAN simulator: a relay placed between two
// endpoints (the two proxies, or src and dst for the baseline) that carries
// UDP (QUIC) and TCP on one port through a simulated line.
//
// Glossary:
//
//   - direction: "up" carries bytes from the clients of the listen address
//     toward the --to address, "down" carries the answers back. Each
//     direction is its own Pipe with the same settings, like the two halves
//     of a full-duplex line.
//   - pipe: one direction of the line: a bottleneck of a given rate with a
//     drop-tail queue, then a propagation delay.
//   - serialization delay: a packet of L bytes occupies the line for
//     L / rate; packets wait for the ones ahead of them (the queue).
//   - queue: the bytes accepted but not yet serialized; a packet that would
//     make it exceed its size is dropped (drop-tail).
//   - wire bytes: a packet's payload plus its IP/UDP or IP/TCP header
//     overhead, which is what the line's rate is spent on.
//   - cross traffic: packets of other users (e.g. VoIP) that take their turn
//     in the same queue and are then discarded, not sent anywhere.
//   - outage: a scheduled interval when the primary line is down; packets
//     are dropped, or carried at the backup line's rate when there is one
//     (failover).
//   - loss, duplication, reordering: random impairments applied to UDP
//     datagrams after the bottleneck. TCP streams are terminated at the
//     relay and re-originated, so they see rate, delay and queueing but no
//     loss (the relay's own TCP stacks would hide it anyway).
package link
