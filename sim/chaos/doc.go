// Package chaos is the fault harness of aimwan: it runs the whole chain as
// real processes on loopback (src, source-edge proxy, link simulator,
// destination-edge proxy, dst), writes through src's NBD export, places
// snapshot markers, injects faults at random (reproducibly from a seed) and
// checks every byte that arrived at the destination.
//
// Glossary
//
//   - round: a run of batches with faults, ended by a drain (everything the
//     source holds has reached the destination volumes) and a check of every
//     snapshot taken in the round and of the final volumes.
//   - batch: writes to the volumes through NBD, followed by a FLUSH and a
//     snapshot marker; the harness keeps the expected image at each marker
//     (it only places a marker after the writes it issued were flushed).
//   - model: the harness's in-memory copy of what every volume must hold.
//   - fault: one injected failure: a SIGKILL and restart of a daemon, a
//     wiped destination-proxy cache, a read-only destination volume, a full
//     destination or source buffer, a link outage or an impaired link (loss,
//     reordering, duplication). Its kind, trigger point and timing come from
//     the round's seed.
//   - drain: waiting until src holds no data (Src Data 0, no dirty regions)
//     and dst has destaged every file it received.
//   - bytes lost: bytes of a snapshot or a final volume that differ from the
//     expected image (a missing snapshot counts in full). Must be 0.
package chaos
