package dedupe

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// BenchmarkIngestFilter measures what an in-memory filter of absent chunks
// saves on novel data (GOMAXPROCS=1, cpuMB/s): the encoder of a source edge
// with its own store and peer index on disk (4 GiB each, as in
// production), encoding 4 MiB payloads none of whose chunks either holds,
// without the absence filter (each new chunk reads a fingerprint-table
// bucket in the peer index and one in the local store) and with it.
func BenchmarkIngestFilter(b *testing.B) {
	img := benchTemplate()
	for _, lvl := range []Level{LevelFastest, LevelDefault} {
		for _, filter := range []bool{false, true} {
			b.Run(fmt.Sprintf("level=%v/filter=%v", lvl, filter), func(b *testing.B) {
				local, err := OpenStore(StoreConfig{Dir: b.TempDir(), MaxBytes: 4 << 30})
				if err != nil {
					b.Fatal(err)
				}
				defer local.Close()
				peer, err := local.PeerIndex()
				if err != nil {
					b.Fatal(err)
				}
				if !filter {
					for _, st := range []*Store{local, peer.st} {
						st.mu.Lock()
						st.absent = nil
						st.mu.Unlock()
					}
				}
				e, _ := NewEncoder(EncoderConfig{Peer: peer, Local: local, Level: lvl})
				payload := make([]byte, benchPayload)
				reads0 := local.Stats().TableReads + peer.Stats().TableReads
				cpuLoop(b, benchPayload, func(i int) {
					off := (i * benchPayload) % len(img)
					copy(payload, img[off:off+benchPayload])
					for k := 0; k < len(payload); k += 4096 { // novel: a changed byte in every block
						binary.LittleEndian.PutUint32(payload[k:], uint32(i)<<8|uint32(k>>12))
					}
					if _, _, err := e.Encode(nil, payload); err != nil {
						b.Fatal(err)
					}
				})
				reads := local.Stats().TableReads + peer.Stats().TableReads - reads0
				b.ReportMetric(float64(reads)/float64(b.N), "table-reads/op")
			})
		}
	}
}

// BenchmarkAbsentLookup is the cost of looking up a chunk the store does
// not hold (a 4 GiB store in a folder): a fingerprint-table bucket read
// without the filter, a filter probe with it.
func BenchmarkAbsentLookup(b *testing.B) {
	for _, filter := range []bool{false, true} {
		b.Run(fmt.Sprintf("filter=%v", filter), func(b *testing.B) {
			st, err := OpenStore(StoreConfig{Dir: b.TempDir(), MaxBytes: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			putChain(st, chunkSeq(9, 2000, 8<<10))
			if !filter {
				st.mu.Lock()
				st.absent = nil
				st.mu.Unlock()
			}
			t0 := cpuNow()
			for i := 0; b.Loop(); i++ {
				st.Has(Sum(binaryKey(uint64(i + 1_000_000))))
			}
			b.ReportMetric(float64((cpuNow()-t0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
