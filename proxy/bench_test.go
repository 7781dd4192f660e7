package proxy

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPair measures goodput through the proxy pair over loopback
// (journal-file bytes per second from the push client's first byte to dst's
// last ack): novel data, data the destination's cache already holds, and
// pass-through. Each iteration pushes 2 MiB of payload in 256 KiB files.
//
//	go test -run '^$' -bench Pair -benchtime 5x ./proxy/
func BenchmarkPair(b *testing.B) {
	const blocks = 512 // 2 MiB of 4 KiB blocks
	for _, tc := range []struct {
		name      string
		mode      Mode
		duplicate bool
	}{
		{"optimize-novel", ModeOptimize, false},
		{"optimize-duplicate", ModeOptimize, true},
		{"passthrough", ModePassthrough, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := testCtx(b, 10*time.Minute)
			p := newPair(b, pairOpts{mode: tc.mode})
			template := randomBlocks(99, blocks)
			if tc.duplicate { // warm the destination's cache
				if err := pushAll(ctx, p.client, makeJournal(b, "warm", template)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				data := template
				if !tc.duplicate {
					data = randomBlocks(uint64(1000+i), blocks)
				}
				files := makeJournal(b, fmt.Sprintf("v%d", i), data)
				var n int64
				for _, f := range files {
					n += int64(len(f.data))
				}
				b.SetBytes(n)
				b.StartTimer()
				if err := pushAll(ctx, p.client, files); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			logical := counter(b, p.srcReg, "aimwan_proxy_logical_bytes_total")
			wire := counter(b, p.srcReg, "aimwan_proxy_wire_bytes_total")
			b.ReportMetric(logical/wire, "reduction")
		})
	}
}
