// Package estimate computes the offline dedupe estimate of a set of disk
// images: the bytes a simple offline deduplicating, compressing copy of
// them would need, the yardstick the proxies' wire bytes are judged by
// (issue 13: "the pair's wire bytes are at most those of the offline
// estimate").
//
// Glossary:
//
//   - chunk: a content-defined piece cut with the proxies' own chunker and
//     parameters (dedupe.Scan, 8 KiB average by default); runs of at least
//     4 KiB of zeros are zero runs, not chunks, and cost nothing.
//   - unique chunk: the first occurrence of a chunk's SHA-256 over all the
//     images, in the order given (the order they are replicated in).
//   - estimate: the sum over the unique chunks of each chunk compressed
//     alone with zstd level 3 (one frame per chunk, no checksum): libzstd
//     itself (`zstd -3`) in a cgo build, klauspost's SpeedDefault (its
//     level-3 equivalent) without cgo. Result.Compressor says which.
//   - new bytes of an image: what the image adds to the images before it,
//     so a clone's cost given its template shows.
//
// Images are streamed: the data is never held, only a set of 16-byte
// fingerprint prefixes (about 30 bytes of RAM per unique chunk: a few
// hundred MB for tens of GB of unique data).
package estimate
