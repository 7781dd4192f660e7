// Package push implements the LAN push protocol: how a node pushes sealed
// journal files to the next hop (src → dst, src → source-edge proxy,
// destination-edge proxy → dst) over mutual TLS on TCP, with an end-to-end
// durable ack.
// "Push" is aimwan's one verb for delivering a file to the next hop and
// waiting for its durable ack.
//
// Glossary:
//
//   - auth: the mutual TLS of a leg (Auth): this node's identity and the
//     fingerprints it pins (package transport/identity). Both sides check;
//     an unpinned or non-TLS peer is refused in the handshake, logged and
//     counted by fingerprint. There is no plaintext mode.
//   - frame: the unit on the wire, a type byte, a big-endian uint32 body
//     length and the body. Bodies larger than MaxFrameBody are refused.
//   - hello: the first exchange on a connection (HELLO from the client,
//     HELLO_OK from the server): protocol magic and version, node name and the
//     volumes the node serves. An unknown version is refused with ErrVersion.
//   - offer: the client proposes one file (volume, file name, file sequence,
//     size, SHA-256) under a connection-unique file id. The name must be
//     journal.FileName of the sequence; receivers use the sequence. Several offers may be in flight on one
//     connection; the id ties DATA, END, ACK and NACK frames to their file.
//   - sink: where the server writes an accepted file (Handler.Accept returns
//     it). Its Offset is the resume offset: bytes already held from an earlier
//     attempt, which the client does not send again.
//   - commit: once END arrives, the sink verifies the SHA-256 and stores the
//     file durably (or forwards it and awaits the far end's ack). A nil result
//     becomes ACK; an error becomes NACK with a wire code.
//   - duplicate: a file already stored durably is acked at once, without data
//     (Handler.Accept or Sink.Commit returns ErrDuplicate).
//   - code: the wire form of an error (Code). CodeOf and ErrorOf map errors
//     to codes and back; errors from the peer arrive as *RemoteError, which
//     satisfies errors.Is with the matching sentinel (ErrBufferFull, ...).
//   - keepalive: PING/PONG frames sent on an idle connection; a connection on
//     which nothing arrives for the idle timeout is closed.
//   - stall: a file receiving no DATA for the server's progress timeout
//     (PINGs do not count); it is aborted with a NACK (ErrStalled), so an
//     offer whose data never comes cannot hold its volume back.
//   - redialer: the client of a sender (src, the destination-edge proxy): one
//     connection to the next hop, dialed on demand, dropped and dialed again
//     under one liveness rule (Redialer).
//
// The frame layouts and message flow are documented in docs/push-protocol.md.
package push
