package dedupe

import (
	"strings"
	"testing"
)

// LevelMax (libzstd through cgo) round-trips through the klauspost
// decoder, with and without a dictionary, and spends its CPU for fewer
// bytes than LevelBest on the same payloads. Without cgo it is refused
// with an error that says why.
func TestLevelMax(t *testing.T) {
	if !MaxAvailable() {
		if _, err := ParseLevel("max"); err == nil || !strings.Contains(err.Error(), "cgo") {
			t.Fatalf("ParseLevel(max) without cgo: %v", err)
		}
		if _, err := NewEncoder(EncoderConfig{Level: LevelMax}); err == nil {
			t.Fatal("an encoder at level max without cgo")
		}
		t.Skip("no cgo: level max unavailable (checked that it is refused)")
	}
	if l, err := ParseLevel("max"); err != nil || l != LevelMax || l.String() != "max" {
		t.Fatalf("ParseLevel(max) = %v, %v", l, err)
	}
	payloads := novelPayloads(43, 3, 512<<10)
	g := newImageGen(44)
	tpl := g.template(1 << 20)
	clone, _ := g.clone(tpl, 0.02)
	wire := map[Level]int{}
	for _, l := range []Level{LevelBest, LevelMax} {
		pr := newLocalPair(t)
		if err := pr.enc.SetLevel(l); err != nil {
			t.Fatal(err)
		}
		dict := 0
		for _, p := range append(payloads, tpl, clone) {
			st, w := pr.send(t, p) // decodes and compares
			wire[l] += w
			dict += st.DictBytes
		}
		if dict == 0 {
			t.Fatalf("level %v: no payload used a dictionary", l)
		}
		// Miss recovery answers at the encoder's level too.
		pr.store.Wipe()
		_, w := pr.send(t, clone)
		wire[l] += w
	}
	t.Logf("wire bytes: best %d, max %d", wire[LevelBest], wire[LevelMax])
	if wire[LevelMax] >= wire[LevelBest] {
		t.Fatalf("level max sent %d bytes, best %d", wire[LevelMax], wire[LevelBest])
	}
}
