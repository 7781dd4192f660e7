package aimsrc

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestDrain: a drained volume refuses NBD writes, zeroes and trims (EPERM),
// keeps serving reads, pushes what it journaled until the drain is
// complete, stays drained across a restart, and takes writes again after
// undo.
func TestDrain(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDst()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	cfg.Push = serveFakeDst(t, d)
	cfg.FileAge = time.Hour // only the drain's seal pushes the open file
	n, stop := runNode(t, cfg)
	c := mustDialNBD(t, n.NBDAddr().String(), "v1")
	data := bytes.Repeat([]byte("before drain"), 300)
	if err := c.write(data, 4096); err != nil {
		t.Fatal(err)
	}
	cl := &Client{Addr: n.ControlAddr().String(), TokenFile: n.TokenPath()}
	ctx := context.Background()
	if _, err := cl.Drain(ctx, DrainRequest{Volume: "nope"}); !errors.Is(err, ErrNoSuchVolume) {
		t.Fatalf("drain of an unknown volume: %v", err)
	}
	st, err := cl.Drain(ctx, DrainRequest{Volume: "v1"})
	if err != nil || !st.Drained {
		t.Fatalf("drain: %+v %v", st, err)
	}
	for name, op := range map[string]func() error{
		"write": func() error { return c.write([]byte("after"), 0) },
		"zero":  func() error { return c.zero(0, 4096) },
		"trim":  func() error { return c.trim(0, 4096) },
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "nbd error 1") {
			t.Errorf("%s on a drained volume: %v, want EPERM (1)", name, err)
		}
	}
	got := make([]byte, len(data))
	if err := c.read(got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read on a drained volume: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "drain complete", func() bool {
		st, err := cl.Drain(ctx, DrainRequest{Volume: "v1"})
		return err == nil && st.Complete
	})
	want := make([]byte, 1<<20)
	copy(want[4096:], data)
	d.checkReplica(t, "v1", cfg.Volumes[0].Path, 1<<20)
	if got := testkit.ReadFile(t, cfg.Volumes[0].Path); !bytes.Equal(got, want) {
		t.Fatal("image changed by a refused write")
	}
	c.close()
	stop()

	n, _ = runNode(t, cfg)
	if s := n.Status().Volumes[0]; !s.Drained {
		t.Fatal("drain lost across a restart")
	}
	c = mustDialNBD(t, n.NBDAddr().String(), "v1")
	if err := c.write([]byte("x"), 0); err == nil {
		t.Fatal("write accepted after a restart of a drained volume")
	}
	cl = &Client{Addr: n.ControlAddr().String(), TokenFile: n.TokenPath()}
	if st, err := cl.Drain(ctx, DrainRequest{Volume: "v1", Undo: true}); err != nil || st.Drained {
		t.Fatalf("undo: %+v %v", st, err)
	}
	if err := c.write([]byte("x"), 0); err != nil {
		t.Fatalf("write after undo: %v", err)
	}
}

// FuzzParseDrain: a drain record of any content is decoded or refused with
// an error, never a panic; what it accepts has a time.
func FuzzParseDrain(f *testing.F) {
	f.Add([]byte(`{"since":"2026-12-02T05:00:00Z"}`))
	f.Add([]byte(`{"since":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseDrain(b)
		if err == nil && r.Since.IsZero() {
			t.Fatalf("accepted a record without a time: %q", b)
		}
	})
}
