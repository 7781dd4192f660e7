// Package nbd is a Network Block Device server (fixed newstyle handshake,
// simple replies) for the exports of a node: the source node's read/write
// volumes, whose writes are journaled, and the destination node's read-only
// snapshots.
//
// Glossary (names as in the NBD protocol, doc/proto.md of the NBD project):
//
//   - export: one named block device (Export): a size and byte-range
//     operations. Exports maps names to exports.
//   - handshake: NBDMAGIC, IHAVEOPT and the handshake flags
//     (FIXED_NEWSTYLE, NO_ZEROES), then option haggling.
//   - option: a client request during the handshake (NBD_OPT_GO, INFO, LIST,
//     ABORT, EXPORT_NAME). Each gets option replies (NBD_REP_*); options this
//     server does not implement get NBD_REP_ERR_UNSUP.
//   - transmission: after NBD_OPT_GO (or EXPORT_NAME), requests (READ,
//     WRITE, FLUSH, TRIM, WRITE_ZEROES, DISC) each answered by a simple reply
//     carrying the request's cookie and an NBD errno (0 = success).
//   - transmission flags: what the export supports (SEND_FLUSH, SEND_FUA,
//     SEND_TRIM, SEND_WRITE_ZEROES, READ_ONLY), sent with the export size.
//   - FUA: force unit access, a WRITE flag: the data is durable before the
//     reply. FLUSH makes every completed write durable.
//   - MaxRequest: the largest READ or WRITE payload accepted (advertised as
//     the maximum block size); TRIM and WRITE_ZEROES may be larger.
//
// The server checks every request against the export's size, read-only state
// and MaxRequest before calling the Export, so an Export never sees an
// out-of-range request. Requests of one connection are processed in order, one
// at a time; replies are written by a writer goroutine. See docs/nbd.md.
package nbd
