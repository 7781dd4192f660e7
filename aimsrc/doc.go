// Package aimsrc is the source storage node of aimwan (`aimwan src`): it
// exports each protected volume over NBD, captures every write into the
// volume's journal before applying it to the volume's image, and pushes sealed
// journal files to the next hop over the LAN push protocol.
//
// Glossary:
//
//   - Volume: a named block device exported over NBD and backed by one image
//     file. Its name is the NBD export name and the name of its journal folder
//     in the source buffer.
//   - Source buffer: the folder (--buffer) holding one journal folder per
//     volume plus each volume's dirty bitmap. Its size on disk is bounded by
//     the buffer limit.
//   - Capture: the write path. A write is appended to the journal first (the
//     journal is the write-ahead log), then written to the image. FLUSH and FUA
//     return only when journal and image are durable.
//   - Src Data: bytes of journal files (sealed and open) that wait in the
//     source buffer for a durable ack from the far end.
//   - Push: deliver a sealed journal file to the next hop (--push: dst or a
//     source-edge proxy) over the LAN push protocol and wait for its durable
//     ack (the one verb of aimwan for "deliver to the next hop"). Files are
//     pushed in file-sequence order, several in flight (PushWindow), each
//     retried with backoff; a file is deleted only after its ack. (The
//     metrics and status fields keep their older names, *_shipped.)
//   - Marker: a snapshot or custom record placed in a volume's write sequence.
//     A group marker is placed atomically in every member of a consistency
//     group with the same group id (GroupSeq).
//   - Initialize: journaling the whole current content of a volume once
//     (runs of all-zero blocks as zero records), so the far end starts from
//     a full copy. It starts a new journal stream.
//   - Stream: the run of journal files of a volume with one random stream id
//     (in every header), from the volume's first capture or an initialize.
//     The far end refuses files of a stream it does not replicate; only an
//     initialize's first file makes it switch.
//   - Delta initialize: an initialize by checksum comparison (init --delta):
//     it starts a stream (start kind delta), asks the next hop for SHA-256 of
//     ranges (256 MiB down to 4 KiB leaves, 16-way) and journals only the
//     leaves that differ. Saved bytes: compared and equal, not sent.
//   - Refused file: a file the far end refused with a verdict that needs an
//     operator (conflict, bad offer, unknown volume): kept, retried slowly,
//     shown in status. Superseded: a refused file of an old stream dropped
//     because an initialize started a newer one (its writes are in the
//     initialize's copy).
//   - Pause: pushing a volume (or every volume: the whole destination)
//     stopped by aimwan src pause until aimwan src resume; writes are still
//     journaled. Stored in PausedFile, so it holds across restarts.
//   - Link: the state of the connection to the next hop (push.LinkState),
//     shown by status; "link down" since a dial failed, the connection
//     ended or the next hop answered unavailable.
//   - Pull-ahead: the state entered when the source buffer is full. Writes are
//     still accepted and applied to the image, but only their regions are
//     recorded in the volume's persistent dirty bitmap.
//   - Resync: the state after pull-ahead while the dirty regions are journaled
//     again from the image's current content; the volume is "normal" again
//     when the bitmap is empty.
//   - Drain: the first step of a planned failover. A drained volume refuses
//     writes, zeroes and trims (EROFS, which NBD clients see as EPERM),
//     persisted in <buffer>/<volume>.drained; the drain is complete when
//     the far end has acknowledged everything (no file, no dirty region, no
//     initialize left).
package aimsrc
