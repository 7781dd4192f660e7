// Package transport carries bytes between the two edge proxies over the WAN.
//
// Glossary:
//
//   - Identity, fingerprint, pins: who a node is and whom it trusts, shared
//     with the LAN push legs; see package transport/identity.
//   - ALPN: the TLS application protocol name, which carries the WAN protocol
//     version (ALPN). A peer speaking another version is refused during the
//     handshake.
//   - Link: the configured bottleneck of the WAN path (rate and RTT), a hint.
//     The bandwidth-delay product (BDP = rate × RTT) sizes the QUIC
//     flow-control windows, the first pace and the first number of
//     connections; the rate controller then measures the path itself.
//   - Endpoint: one packet socket (any net.PacketConn: UDP, or a simulated
//     network in tests) carrying QUIC connections.
//   - Pool: the QUIC connections kept open to one peer, redialled with
//     exponential backoff when lost; their number adapts (more while their
//     congestion windows hold the pace back). Each has its own congestion
//     controller, so one random loss slows one of them.
//   - Transfer: a blob (a file's data) sent striped: cut into parts that
//     travel as records on long-lived part streams over whichever
//     connections are free; the receiver answers each record with a status
//     report (stored or refused, its clock, the bytes received).
//   - Lane: a connection's writer of parts; only as many lanes write at once
//     as the pace needs.
//   - Assembler: the receiving side: puts the parts of a registered transfer
//     in place, keeps early parts aside for a while.
//   - Rate controller: paces the pool at what the path delivers (D, from the
//     receiver's reports) holding a small queue at the bottleneck (q, from
//     QUIC's round trips over the base RTT); backs off when the queue stands,
//     not on random loss. Its view is exported as Estimates.
//   - Schedule: a weekly table of time ranges and rate caps ("mon-fri
//     08:00-18:00 2mbit"), see ParseSchedule.
//   - Throttle: a token bucket on the bytes an edge proxy writes to the WAN,
//     whose rate follows the schedule and changes at range boundaries; the
//     pool's pace never exceeds it.
//
// The LAN push protocol between src, the proxies and dst lives in
// transport/push.
package transport
