package aimsrc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// TestCoalesceThroughNBD rewrites the same blocks many times through the NBD
// export, within one window, with and without --coalesce. The sealed files
// must replay to the image either way; with coalescing each block's final
// data travels once per window, markers end windows and keep the sequence
// the control API returned.
func TestCoalesceThroughNBD(t *testing.T) {
	const (
		size   = 1 << 20
		blocks = 8
		rounds = 20
		bs     = 4096
	)
	for _, window := range []time.Duration{0, time.Hour} {
		t.Run("coalesce="+window.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size})
			cfg.Coalesce = window
			if window == 0 {
				cfg.FileAge = time.Hour // both runs seal only at the marker and at the stop
			}
			n, stop := runNode(t, cfg)
			c := mustDialNBD(t, n.NBDAddr().String(), "v1")
			rng := rand.New(rand.NewPCG(3, 4))
			buf := make([]byte, bs)
			var firstDone time.Time // when the first write was acked
			rewrite := func(nblocks, times int) {
				for r := 0; r < times; r++ {
					for b := nblocks - 1; b >= 0; b-- {
						for i := range buf {
							buf[i] = byte(rng.Uint32())
						}
						if err := c.write(buf, int64(b)*64<<10); err != nil {
							t.Fatal(err)
						}
						if firstDone.IsZero() {
							firstDone = time.Now()
						}
					}
				}
			}
			rewrite(blocks, rounds)
			if err := c.zero(1*64<<10, bs); err != nil {
				t.Fatal(err)
			}
			if err := c.trim(2*64<<10, bs); err != nil {
				t.Fatal(err)
			}
			if err := c.flush(); err != nil {
				t.Fatal(err)
			}
			res, err := n.Marker(MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "s1"})
			if err != nil {
				t.Fatal(err)
			}
			st := n.Status().Volumes[0]
			// Once the pusher has read the sealed file (its push fails:
			// nothing listens), the oldest unsent write is still the
			// window's first, not the newest time a coalesced record
			// carries.
			deadline := time.Now().Add(10 * time.Second)
			for window != 0 && n.Status().Volumes[0].LastPushError == "" && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if o := n.Status().Volumes[0].OldestUnsent; o == nil || o.After(firstDone) {
				t.Fatalf("oldest unsent %v, want at or before the first write (acked %v)", o, firstDone)
			}
			rewrite(blocks/2, rounds/2)
			c.close()
			stop()

			rp := newReplayer(size)
			rp.replayDir(t, filepath.Join(cfg.Buffer, "v1"))
			if img := testkit.ReadFile(t, cfg.Volumes[0].Path); !bytes.Equal(rp.img, img) {
				t.Fatalf("replayed journals differ from the image: %s", testkit.FirstDiff(img, rp.img))
			}
			var payload int64
			var marker journal.Record
			for _, r := range rp.records {
				if r.Kind == journal.KindWrite {
					payload += r.Length
				}
				if r.Kind == journal.KindSnapshot {
					marker = r
				}
			}
			if marker.Seq != res.Seqs["v1"] {
				t.Fatalf("marker sealed at seq %d, the control API said %d", marker.Seq, res.Seqs["v1"])
			}
			raw := int64(blocks*rounds+blocks/2*rounds/2) * bs
			t.Logf("window %v: %d payload bytes journaled for %d written", window, payload, raw)
			if window == 0 {
				if payload != raw || st.CoalescedBytes != 0 {
					t.Fatalf("coalescing off: %d payload bytes (want %d), %d coalesced", payload, raw, st.CoalescedBytes)
				}
				return
			}
			if want := int64(blocks-2+blocks/2) * bs; payload != want {
				t.Fatalf("coalescing on: %d payload bytes, want %d (each block's final data once per window)", payload, want)
			}
			if want := uint64(blocks*rounds-(blocks-2)) * bs; st.CoalescedBytes != want ||
				st.CoalesceRecordsIn != blocks*rounds+2 || st.CoalesceRecordsOut != blocks {
				t.Fatalf("status after the first window: %d bytes coalesced (want %d), records %d -> %d",
					st.CoalescedBytes, want, st.CoalesceRecordsIn, st.CoalesceRecordsOut)
			}
		})
	}
}

func TestCoalesceConfig(t *testing.T) {
	dir := t.TempDir()
	base := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	tests := []struct {
		name     string
		coalesce time.Duration
		age      time.Duration
		ok       bool
	}{
		{"off", 0, 0, true},
		{"on", 10 * time.Second, 0, true},
		{"same age", 10 * time.Second, 10 * time.Second, true},
		{"negative", -time.Second, 0, false},
		{"other age", 10 * time.Second, time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Coalesce, c.FileAge = tt.coalesce, tt.age
			c = c.withDefaults()
			err := c.validate()
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("validate: %v", err)
			}
			if tt.ok && tt.coalesce > 0 && c.FileAge != tt.coalesce {
				t.Fatalf("file age %v, want the window %v", c.FileAge, tt.coalesce)
			}
		})
	}
	for _, tc := range []struct{ file, want int64 }{
		{4 << 20, 64 << 20}, {1 << 20, 16 << 20}, {32 << 20, 64 << 20}, {128 << 20, 128 << 20},
	} {
		if got := coalesceCeiling(tc.file); got != tc.want {
			t.Errorf("coalesceCeiling(%d) = %d, want %d", tc.file, got, tc.want)
		}
	}
}
