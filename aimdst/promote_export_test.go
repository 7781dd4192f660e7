package aimdst

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestPromotedExport: a replica is refused; a promoted volume takes writes,
// zeroes and trims through the export.
func TestPromotedExport(t *testing.T) {
	tn := newTestNode(t, nil)
	if err := os.WriteFile(tn.volPath, bytes.Repeat([]byte{7}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPromotedExport(tn.cfg.BufferDir, "vol", tn.volPath); !errors.Is(err, ErrNotPromotedExport) {
		t.Fatalf("export of a replica: %v", err)
	}
	tn.serve(t)
	if _, err := tn.n.Promote(context.Background(), PromoteRequest{Volume: "vol"}); err != nil {
		t.Fatal(err)
	}
	e, err := OpenPromotedExport(tn.cfg.BufferDir, "vol", tn.volPath)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Size() != 1<<20 || e.ReadOnly() {
		t.Fatalf("size %d, read-only %v", e.Size(), e.ReadOnly())
	}
	want := bytes.Repeat([]byte{7}, 1<<20)
	if err := e.WriteAt([]byte("hello"), 100, true); err != nil {
		t.Fatal(err)
	}
	copy(want[100:], "hello")
	for _, c := range []struct {
		off, n int64
		noHole bool
	}{{4096, 8192, false}, {65536, 4096, true}} {
		if err := e.WriteZeroes(c.off, c.n, c.noHole, false); err != nil {
			t.Fatal(err)
		}
		clear(want[c.off : c.off+c.n])
	}
	if err := e.Trim(1<<19, 4096); err != nil {
		t.Fatal(err)
	}
	clear(want[1<<19 : 1<<19+4096])
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, want) {
		t.Fatalf("volume after writes through the export: %s", testkit.FirstDiff(want, got))
	}
	got := make([]byte, 5)
	if err := e.ReadAt(got, 100); err != nil || string(got) != "hello" {
		t.Fatalf("read back %q %v", got, err)
	}
}
