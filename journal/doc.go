// Package journal implements the AIM replication file: the on-disk journal
// that carries a volume's writes and markers from the source node to the
// destination node.
//
// Glossary
//
//   - Record: one entry of a journal. A write (KindWrite) carries data; a
//     zero (KindZero, NBD WRITE_ZEROES) or trim (KindTrim) names a range of
//     the volume and carries no data bytes; a marker is a record that names a
//     point in the stream rather than a change to the volume.
//   - Marker: a snapshot marker (KindSnapshot, a label) or a custom marker
//     (KindCustom, a label plus key=value arguments). A marker issued for a
//     consistency group carries the group name, a group sequence number, the
//     same in every member volume's journal, and the member volumes.
//   - Watermark: a record's source timestamp T, which says that every write
//     the source acknowledged before T is in that file or an earlier one.
//     A watermark record (KindWatermark, format version 3) carries nothing
//     else; the source writes it alone in a heartbeat file when the volume
//     is idle (Writer.Heartbeat), so the destination knows how current it
//     is without any write.
//   - Sequence (write sequence, Record.Seq): the per-volume order of records.
//     Every write and marker takes the next number, starting at 1, across
//     files. Within a file the sequence numbers are consecutive.
//   - File sequence (Header.FileSeq): the number of a journal file within a
//     volume, starting at 1; the file name is FileName(seq). File sequence
//     numbers are consecutive: a number is never skipped and never reused.
//   - Payload region: the bytes of all writes of a file, back to back, in
//     record order, with nothing between them. Keeping per-record metadata out
//     of it is what lets the WAN proxies deduplicate the data.
//   - Index: the list of records of a file, stored after the payload region.
//     A write's record points into the payload region (DataOff, Length) and
//     holds the CRC32C of its data.
//   - Footer: the fixed-size trailer: where the payload region and the index
//     are, record counts, first and last sequence, and the SHA-256 of every
//     byte before the footer.
//   - Sealing: turning the open file into a journal file: append the index and
//     the footer, fsync, rename from the temporary name to FileName(seq), fsync
//     the folder. Only sealed files carry the final name, so readers never see
//     a file being written.
//   - Rotation: the Writer seals the open file by itself when its payload
//     reaches MaxFileSize, when it holds MaxRecords records, or when its first
//     record is MaxAge old, and reports each sealed file (SealedFile: seq,
//     size, records, times) to OnSeal. With DeferSeal a filled file waits for
//     the owner's SealIfFull, so a write-ahead-log owner seals only records
//     it has applied.
//   - Sidecar: while a file is open, every record is also appended, framed
//     with its own CRC32C, to an index sidecar next to it. Sync makes the open
//     file and the sidecar durable, so records survive a crash without the
//     cost of sealing; OpenWriter recovers them.
//   - Stream (Header.Stream, StreamID): the run of files one source journal
//     writes for a volume, named by a random id in every header (format
//     version 2). It begins with the volume's journal folder, or at
//     Writer.StartStream (an initialize), whose first file says so
//     (Header.Start). Sequences go on across a change of stream.
//   - Coalescing (WriterConfig.Coalesce, Coalesce): sealing a file compacted,
//     with the writes that later records of the file overwrote dropped and
//     the records renumbered from the base seq; markers are barriers.
//
// The byte layout is described in docs/journal-format.md.
package journal
