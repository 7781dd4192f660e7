// Package transport carries bytes between the two edge proxies over the WAN.
//
// Glossary:
//
//   - Identity, fingerprint, pins: who a node is and whom it trusts, shared
//     with the LAN push legs; see package transport/identity.
//   - ALPN: the TLS application protocol name, which carries the WAN protocol
//     version (ALPN). A peer speaking another version is refused during the
//     handshake.
//   - Link: the configured bottleneck of the WAN path (rate and RTT). The
//     bandwidth-delay product (BDP = rate × RTT) sizes the QUIC flow-control
//     windows so that one stream can fill the link.
//   - Pool: the N QUIC connections kept open to one peer; each connection has
//     its own congestion controller, so one random loss slows 1/N of the
//     traffic. A lost connection is redialled with exponential backoff.
//   - Schedule: a weekly table of time ranges and rate caps ("mon-fri
//     08:00-18:00 2mbit"), see ParseSchedule.
//   - Throttle: a token bucket on the bytes an edge proxy writes to the WAN,
//     whose rate follows the schedule and changes at range boundaries.
//
// The LAN push protocol between src, the proxies and dst lives in
// transport/push.
package transport
