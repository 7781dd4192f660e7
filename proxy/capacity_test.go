package proxy

import (
	"testing"
	"time"
)

// TestSmallDestinationStore: the destination edge's store is much smaller
// than the source edge's. The handshake tells its capacity, so the source's
// peer index forgets what that store has evicted: after more data than it
// holds, sending the first volume again costs literals, not a miss round
// trip per chunk the peer no longer has.
func TestSmallDestinationStore(t *testing.T) {
	for _, local := range []bool{false, true} {
		name := "peer-index-only"
		if local {
			name = "with-local-store"
		}
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t, 300*time.Second) // generous: a pass takes seconds; -race on a loaded box took 120 s
			const destCache = 4 << 20
			p := newPair(t, pairOpts{destCache: destCache, local: local})
			a := randomBlocks(31, 1200) // 4.8 MB each: more than the store holds
			b := randomBlocks(32, 1200)
			for _, files := range [][]jfile{makeJournal(t, "vol-a", a), makeJournal(t, "vol-b", b),
				makeJournal(t, "vol-a2", a)} {
				for _, f := range files { // one at a time: the peer stores them in encode order
					if err := pushAll(ctx, p.client, []jfile{f}); err != nil {
						t.Fatal(err)
					}
				}
				checkArrived(t, p.dst, files)
			}
			if got := p.src.peer.PeerCapacity(); got != destCache {
				t.Errorf("peer index sized to a peer of %d bytes, want %d", got, destCache)
			}
			misses := counter(t, p.destReg, "aimwan_proxy_ref_misses_total")
			evicted := labelled(t, p.destReg, "aimwan_proxy_store_evicted_bytes_total", "store", "chunks")
			t.Logf("destination store evicted %.0f bytes; %v misses", evicted, misses)
			if evicted < 4<<20 {
				t.Fatalf("the destination store evicted only %.0f bytes: the test does not overflow it", evicted)
			}
			if misses > 3 {
				t.Errorf("%v misses: the source believes in chunks the small destination store evicted", misses)
			}
		})
	}
}
