package bench

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func TestRandomDataIsStableAndIncompressible(t *testing.T) {
	r := randomData{seed: 5}
	a := make([]byte, 3*randomBlock+100)
	if _, err := r.ReadAt(a, 1000); err != nil {
		t.Fatal(err)
	}
	// The same bytes read in other pieces.
	b := make([]byte, len(a))
	for off := 0; off < len(b); off += 7000 {
		end := min(off+7000, len(b))
		if _, err := r.ReadAt(b[off:end], int64(1000+off)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a, b) {
		t.Fatal("random data depends on how it is read")
	}
	if other := make([]byte, len(a)); func() bool { _, _ = (randomData{seed: 6}).ReadAt(other, 1000); return bytes.Equal(a, other) }() {
		t.Fatal("two seeds give the same data")
	}
	enc, _ := zstd.NewWriter(nil)
	if c := enc.EncodeAll(a, nil); len(c) < len(a) {
		t.Errorf("zstd shrank random data from %d to %d bytes", len(a), len(c))
	}
}

func TestSteadyRate(t *testing.T) {
	t0 := time.Unix(0, 0)
	var s []wanSample
	// 1 s of start-up with nothing destaged, then 100 bytes per second.
	for i := range 12 {
		d := 0.0
		if i > 1 {
			d = float64(i-1) * 100
		}
		s = append(s, wanSample{t: t0.Add(time.Duration(i) * time.Second), destaged: d})
	}
	if got := steadyRate(s, 1000); got < 99 || got > 101 {
		t.Errorf("steady rate %.1f, want 100", got)
	}
	if got := steadyRate(s[:2], 1000); got != 0 {
		t.Errorf("steady rate of two samples %.1f, want 0", got)
	}
}

func TestWANConfigValidate(t *testing.T) {
	ok := WANConfig{Out: "x", Bin: "aimwan"}.withDefaults()
	if err := ok.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*WANConfig)
	}{
		{"no out", func(c *WANConfig) { c.Out = "" }},
		{"tiny size", func(c *WANConfig) { c.Size = 10 }},
		{"too many volumes", func(c *WANConfig) { c.Volumes = 99 }},
		{"cross fills the line", func(c *WANConfig) { c.Cross = c.Rate }},
		{"loss 1", func(c *WANConfig) { c.Loss = 1 }},
		{"rtt", func(c *WANConfig) { c.RTT = time.Minute }},
	} {
		c := ok
		tc.edit(&c)
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
}
