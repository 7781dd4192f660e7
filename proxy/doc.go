// Package proxy is the edge proxy pair that carries journal files across the
// WAN: the source edge accepts LAN pushes from `aimwan src`, the destination
// edge pushes rebuilt files to `aimwan dst`, and dst's durable ack travels
// back through both to src.
//
// Glossary:
//
//   - Node: one running proxy (`aimwan proxy`), either edge, assembled from a
//     Config: it opens the chunk cache (moving an unreadable one aside),
//     runs its saves, watches the schedule file, serves the metrics and
//     records them. cmd/aimwan only turns flags and YAML into a Config.
//   - Push: deliver a journal file to the next hop and wait for its durable
//     ack, the one verb for it in aimwan: src pushes to the source edge, the
//     source edge pushes each file over the WAN to the destination edge
//     (Source.push, one QUIC stream per attempt), which pushes it on to dst
//     (push.Redialer). "Send" is the lower level: writing frames.
//   - Source edge (Source): a push.Handler. It holds each offered file in
//     memory, splits it (journal.Split) into metadata and payload, encodes
//     them and sends them on one QUIC stream; it answers the far end's misses
//     from the file it still holds, and acks src only after the verdict.
//   - Destination edge (Dest): accepts QUIC connections from pinned peers,
//     rebuilds each file (journal.Join), checks its SHA-256, pushes it to dst with
//     push.Client and relays dst's verdict (ack, or the NACK's code).
//   - Control stream: the first stream of each connection. HELLO / HELLO_OK
//     exchange the protocol version, the mode, the chunking parameters (a
//     mismatch is refused), the destination's store epoch, priming mark and
//     capacity (the source sizes its peer index to it); when the source
//     edge's peer index describes another epoch or an earlier mark, the
//     destination streams what it lacks of its held list (fingerprints
//     only, a container at a time) so the index starts warm.
//   - File stream: one per file. FILE (what the file is), DATA pieces
//     (compressed metadata, then the dedupe stream) or, for 64 KiB and more,
//     STRIPED (the data travels as a transport transfer over all the
//     connections), MISS / ANSWER while references cannot be resolved,
//     RESULT (dst's verdict as a push code).
//   - Optimize mode: metadata zstd-compressed, payload as references and
//     literals (package dedupe). Pass-through mode: the raw file bytes — the
//     unoptimized baseline over the same path.
//   - Verdict: dst's answer for one file, relayed unchanged (push.CodeOf on
//     one side, push.ErrorOf on the other).
//   - WAN queue: encoded bytes waiting to go on the WAN; it drives the
//     adaptive compression level (chooseLevel).
//   - Wire bytes: every byte a proxy writes on its QUIC streams, framing
//     included (QUIC's own packet overhead excluded). Logical bytes: journal
//     file bytes carried.
//
// A proxy holds no data that exists nowhere else: the source edge acks only
// after dst stored the file, so either proxy may crash at any time; its chunk
// cache is an optimization that may be wiped.
//
// The frame layouts are in docs/wire-protocol.md.
package proxy
