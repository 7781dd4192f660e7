// Package aimdst is the destination node: it receives journal files over the
// LAN push protocol into a durable destination buffer and destages them, in
// sequence order, to the destination volumes; it takes snapshots at snapshot
// markers, runs hooks at custom markers, holds consistency groups together,
// and exports snapshots read-only over NBD.
//
// Glossary
//
//   - destination buffer: the folder <buffer>/<volume>/ holding journal files
//     received and not yet destaged. A file is stored under its final name
//     only after its SHA-256 and structure were checked and it was fsynced
//     (file and folder); only then is it acked. <name>.part is a file being
//     received; its size is the resume offset.
//   - destination volume: a regular file, a block device, or an NBD export
//     named by an NBD URI (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?
//     socket=PATH), written with the nbd package's client over one
//     connection held while files are waiting (see nbdVolume).
//   - destage: applying a journal file's records to the destination volume:
//     writes with pwrite, zero and trim ranges as punched holes (over NBD:
//     WRITE and WRITE_ZEROES; Sync is FLUSH).
//   - reorder buffer (fileQueue): files arrive in any order and more than
//     once; destage takes only the next file in sequence, so a missing file
//     (a gap) holds back the ones after it.
//   - duplicate: an offered file that is held already or was destaged
//     (sequence at or below the cursor's file) with the same SHA-256 (the
//     cursor keeps the digests of the newest destaged files); acked, never
//     applied twice. The same number with other contents is refused.
//   - stream, binding: each source volume's journal is a stream with a
//     random id in every file's header; a destination volume is bound to
//     the stream it replicates (kept in its cursor) and refuses files of any
//     other with push.ErrConflict, never acked, with what to do.
//   - rebind: the first file of a new stream, marked in its header as
//     started by an initialize, switches the binding once destage has
//     nothing left of the old stream; the volume is copied first and the old
//     binding kept in status.
//   - checksums: dst answers a delta initialize's checksum requests (Sums)
//     once the volume is bound to the initialize's stream, hashing the
//     destaged volume (past its end: zeros).
//   - quarantine: <buffer>/<volume>/quarantine/, where destage moves a held
//     file it will not apply (records that do not follow the cursor, a
//     stream the volume no longer replicates); kept and reported.
//   - booking: the bytes of a file being received, reserved against the
//     buffer limit at its offer so parallel offers cannot overrun it.
//   - cursor: <buffer>/<volume>/cursor.json, the last file and record
//     destaged durably, replaced atomically. See Cursor for why a crash at any
//     point neither skips nor changes a write.
//   - marker point: destage stops at every marker with all writes before it
//     durable and none after it applied; the snapshot is taken (or the hook
//     run) and the cursor persisted before destage goes on.
//   - snapshot: <snapshots>/<volume>/<label>.img, a point-in-time copy made at
//     a snapshot marker: a reflink where the file system shares extents, else
//     a sparse copy, or for an NBD volume a copy read over NBD; atomic
//     (temp, rename).
//   - hook: the command configured for a custom marker's label, run with the
//     marker in its environment; bounded by a timeout; failures are logged and
//     counted, never stop destage.
//   - consistency group: volumes whose group markers (same Group and GroupSeq)
//     take effect together: every member waits at the marker until all have
//     reached it, then all members' snapshots are taken at that point. The
//     marker names its members; one this node does not hold is reported.
//   - offline: the destination volume cannot be written (missing, read-only,
//     full, too small; an NBD server unreachable, a connection lost...);
//     receiving goes on, destage retries with back-off and reopens it.
//   - Time Latency: now minus the source timestamp of the newest destaged
//     write, per volume.
//   - promotion (failover): a volume made writable at the DR site, at the
//     newest point that arrived or at a snapshot (restored into it); destage
//     stops for good and files pushed for it are refused (conflict). Kept in
//     <buffer>/<volume>/promoted.json; what it did not apply goes to the kept
//     folder promoted-TIME/. Demote makes it a replica again with a retired
//     stream binding (only an initialize rebinds it).
//   - group point (of a promotion): the newest group snapshot every member
//     has, the one point consistent across a group.
//   - test clone: a qcow2 overlay on a snapshot in <snapshots>/.clones/,
//     served read-write by qemu-nbd for a DR test and removed after it.
package aimdst
