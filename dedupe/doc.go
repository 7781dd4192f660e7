// Package dedupe turns a journal file's payload into a short stream of
// operations against what the peer proxy already holds, and back. It knows
// bytes only: no sockets, no journal semantics.
//
// # Glossary
//
//   - chunk: a piece of payload cut by a content-defined boundary (a Rabin
//     rolling hash over 64 bytes, github.com/restic/chunker with a fixed
//     polynomial). Equal content gives equal chunks wherever it sits, so a
//     shifted or cloned block still matches. Chunks are between MinSize
//     and MaxSize bytes (the last of a segment may be shorter), AvgSize on
//     average.
//   - fingerprint: the SHA-256 of a chunk, its name everywhere.
//   - params: polynomial, min/avg/max chunk size, zero-run threshold and
//     fingerprint algorithm. Both proxies must agree on them; they compare
//     Params.ID (or Params.Hash, also carried in every stream).
//   - literal: an op carrying a chunk's bytes. All literals of one payload
//     are compressed together as one zstd stream (history spans chunks),
//     while each chunk stays addressable by its fingerprint in the store.
//   - reference: an op naming one chunk by fingerprint (and length) that
//     the peer is believed to hold.
//   - run reference: an op naming N chunks that followed each other when
//     first seen (Steelhead's hierarchical reference): the first
//     fingerprint, N, the total length and a 16-byte check over the N
//     fingerprints. The receiver expands it by following successor links
//     in its store. A fully duplicate 4 MiB payload is one run: ~70 bytes.
//   - successor: the chunk that followed a chunk the first time it was
//     seen. Sender (peer index) and receiver (store) record it with the
//     same rule, set-if-absent, in payload order; zero runs and payload
//     starts break the chain.
//   - zero run: an op for at least ZeroRun zero bytes, found before
//     chunking (the chunker alone would cut them into MinSize chunks).
//   - head / tail (edges): a payload that starts (ends) inside a chunk the
//     peer holds, because a journal file boundary cut it, sends that
//     fragment as the last (first) bytes of pred(W) (succ of the previous
//     chunk) with an 8-byte check. A wrong guess is a miss.
//   - base: a chunk the peer holds whose bytes join the zstd dictionary
//     of a payload's literal stream: the chunks the literals probably
//     replace (delta literals) and, for mostly novel payloads, the most
//     recent literal chunks (history). Needs EncoderConfig.Local. Bases
//     that followed each other when first seen travel as one run entry.
//   - level: the literal compression effort, fastest..best (klauspost
//     zstd) and max (libzstd -19 through cgo, zstd_cgo.go).
//   - store: a proxy's chunk cache (fingerprint -> bytes, plus successor
//     links), on disk, sized in bytes of disk (gigabytes to terabytes).
//     It is never trusted: Get re-hashes what it returns.
//   - container: a file of the store holding chunks in the order they
//     arrived (up to 16 MiB), then its table (fingerprint, place and flags
//     of each chunk, and the explicit links recorded meanwhile). The open
//     container is in memory until full; the oldest containers are evicted
//     first.
//   - refresh: a chunk used near the eviction end is stored again in the
//     open container (store and peer index alike), so what streams keep
//     referencing stays.
//   - fingerprint table: the store's full index, a bucketed hash table in a
//     file (short fingerprint -> container and entry), read one 1 KiB
//     bucket per lookup, so its size costs disk and page cache, not memory.
//   - container cache: the tables of recently used containers in memory; a
//     lookup that reads one container's table prefetches its neighbours'
//     fingerprints (stream locality, as in the Data Domain file system).
//   - implicit link: a chunk stored right after its predecessor carries a
//     flag instead of a link entry, so a stream's successor chain costs
//     nothing, even across containers.
//   - peer index: the sender's belief of what the peer's store holds
//     (short fingerprints and successors, no data): a store without data,
//     on disk beside the sender's own store, sized to the peer store's
//     capacity (told at the handshake). A wrong belief costs a miss round
//     trip, never correctness.
//   - miss: a reference or run the receiver could not resolve. The decoder
//     lists misses (Pending.AppendMissList); the encoder, still holding the
//     payload, answers with literals (Encoder.Answer); the decoder finishes
//     (Pending.Resolve) and checks the payload (Pending.Payload).
//   - epoch: a random id of a store's content generation, new when the
//     store starts cold or is wiped. It travels in miss lists, held lists
//     and the proxies' handshake; a sender seeing a new epoch drops its
//     peer index (PeerIndex.SetEpoch, BeginHeld).
//   - mark: the priming passes of a store in its epoch; each records the
//     containers it wrote, so a peer index at an earlier mark learns only
//     those (Store.HeldFor).
//   - held list: what a store holds (16 bytes a chunk: short fingerprint
//     and short successor), listed a container at a time (HeldCursor) and
//     loaded a piece at a time (PeerIndex.AddHeld), so priming exchanges
//     fingerprints, never data, in bounded memory.
//   - priming: chunking a local image into the store (Prime) so that data
//     the DR site already holds is never sent.
//   - scan: cutting a stream of any size (an image) into the pieces one
//     continuous payload would get, through one buffer (Scan); priming and
//     the offline estimate (`aimwan sim estimate`) use it.
//   - coalescing is not here: the source node merges a window of writes to
//     the same blocks when it seals a journal file (journal.Coalesce,
//     `aimwan src --coalesce`), before any encoding.
//
// # Use
//
// Sender: e := NewEncoder(EncoderConfig{Peer: idx, Local: st});
// idx.SetEpoch(peerEpoch) at each handshake; stream := e.Encode(nil,
// payload); later answer := e.Answer(nil, payload, missList).
// Receiver: d := NewDecoder(DecoderConfig{Store: st}); p := d.Decode(stream);
// if !p.Complete() { send p.AppendMissList(nil); p.Resolve(answer) };
// payload, err := p.Payload(); then verify the file's SHA-256.
//
// The op encoding is in docs/dedupe.md.
package dedupe
