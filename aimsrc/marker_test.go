package aimsrc

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
)

// TestGroupMarkerAtomic: one client writes alternately to volumes a and b
// while group markers are placed. Every marker must cut both journals at a
// consistent point: the writes before it on a and b form a prefix of the
// client's order (a0 b0 a1 b1 ...), so b has as many writes before the
// marker as a, or one fewer.
func TestGroupMarkerAtomic(t *testing.T) {
	const size = 2 << 20
	dir := t.TempDir()
	cfg := testConfig(t, dir,
		VolumeConfig{Name: "a", Path: filepath.Join(dir, "a.img"), Size: size},
		VolumeConfig{Name: "b", Path: filepath.Join(dir, "b.img"), Size: size})
	cfg.Groups = []GroupConfig{{Name: "g", Volumes: []string{"b", "a"}}}
	n, stop := runNode(t, cfg)
	ca := mustDialNBD(t, n.NBDAddr().String(), "a")
	cb := mustDialNBD(t, n.NBDAddr().String(), "b")
	const writes = 400
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for i := range writes {
			buf[0] = byte(i)
			if err := ca.write(buf, int64(i%256)*4096); err != nil {
				done <- err
				return
			}
			if err := cb.write(buf, int64(i%256)*4096); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	cl := &Client{Addr: n.ControlAddr().String(), TokenFile: n.TokenPath()}
	var results []MarkerResult
	for len(results) < 15 {
		res, err := cl.Marker(context.Background(), MarkerRequest{Group: "g", Kind: MarkerSnapshot, Label: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stop()
	before := map[string]map[uint64]int{} // volume -> group seq -> writes before it
	for _, vol := range []string{"a", "b"} {
		rp := newReplayer(size)
		rp.replayDir(t, filepath.Join(cfg.Buffer, vol))
		before[vol] = map[uint64]int{}
		w := 0
		for _, r := range rp.records {
			switch {
			case r.Kind == journal.KindWrite:
				w++
			case r.Kind == journal.KindSnapshot && r.Group == "g":
				before[vol][r.GroupSeq] = w
				if !slices.Equal(r.Members, []string{"a", "b"}) {
					t.Errorf("group marker %d on %s names members %v, want a,b", r.GroupSeq, vol, r.Members)
				}
			}
		}
		if w != writes {
			t.Errorf("volume %s: %d writes journaled, want %d", vol, w, writes)
		}
	}
	for i, res := range results {
		if res.GroupSeq != uint64(i+1) || len(res.Seqs) != 2 {
			t.Errorf("marker %d: result %+v", i, res)
		}
		a, aok := before["a"][res.GroupSeq]
		b, bok := before["b"][res.GroupSeq]
		if !aok || !bok {
			t.Fatalf("group seq %d missing from a journal (a %v, b %v)", res.GroupSeq, aok, bok)
		}
		if b != a && b != a-1 {
			t.Errorf("group seq %d cuts inconsistently: %d writes of a and %d of b before it", res.GroupSeq, a, b)
		}
	}
}

// TestControlErrors: bad marker and init requests get errors naming what was
// wrong, with the right class.
func TestControlErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	cfg.Groups = []GroupConfig{{Name: "g", Volumes: []string{"v1"}}}
	n, _ := runNode(t, cfg)
	cl := &Client{Addr: n.ControlAddr().String(), TokenFile: n.TokenPath()}
	ctx := context.Background()
	tests := []struct {
		name string
		req  MarkerRequest
		want error
	}{
		{"unknown volume", MarkerRequest{Volume: "nope", Kind: MarkerSnapshot, Label: "x"}, ErrNoSuchVolume},
		{"unknown group", MarkerRequest{Group: "nope", Kind: MarkerSnapshot, Label: "x"}, ErrNoSuchVolume},
		{"both volume and group", MarkerRequest{Volume: "v1", Group: "g", Kind: MarkerSnapshot, Label: "x"}, ErrBadRequest},
		{"neither", MarkerRequest{Kind: MarkerSnapshot, Label: "x"}, ErrBadRequest},
		{"label with a dot", MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "../x"}, ErrBadRequest},
		{"bad kind", MarkerRequest{Volume: "v1", Kind: "backup", Label: "x"}, ErrBadRequest},
		{"snapshot with args", MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "x", Args: []Arg{{"k", "v"}}}, ErrBadRequest},
		{"bad arg key", MarkerRequest{Volume: "v1", Kind: MarkerCustom, Label: "x", Args: []Arg{{"k/1", "v"}}}, ErrBadRequest},
		{"NUL in an arg value", MarkerRequest{Volume: "v1", Kind: MarkerCustom, Label: "x", Args: []Arg{{"k", "a\x00b"}}}, ErrBadRequest},
		{"newline in an arg value", MarkerRequest{Volume: "v1", Kind: MarkerCustom, Label: "x", Args: []Arg{{"k", "a\nb"}}}, ErrBadRequest},
		{"escape in an arg value", MarkerRequest{Volume: "v1", Kind: MarkerCustom, Label: "x", Args: []Arg{{"k", "\x1b[31m"}}}, ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.Marker(ctx, tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("custom marker ok", func(t *testing.T) {
		res, err := cl.Marker(ctx, MarkerRequest{Volume: "v1", Kind: MarkerCustom, Label: "app-quiesce",
			Args: []Arg{{"db", "orders"}, {"note", "weekly run"}}})
		if err != nil || res.Seqs["v1"] == 0 {
			t.Fatalf("marker: %+v, %v", res, err)
		}
	})
	t.Run("init unknown volume", func(t *testing.T) {
		if _, err := cl.Init(ctx, "nope"); !errors.Is(err, ErrNoSuchVolume) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("control unreachable", func(t *testing.T) {
		c := &Client{Addr: "127.0.0.1:1"}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c.Status(cctx); err == nil {
			t.Fatal("want an error")
		}
	})
}

// FuzzMarkerRequest: any JSON body either is refused as a bad request or
// yields a marker record the journal accepts.
func FuzzMarkerRequest(f *testing.F) {
	for _, s := range []string{
		`{"volume":"v1","kind":"snapshot","label":"nightly"}`,
		`{"group":"g","kind":"custom","label":"q","args":[{"key":"db","value":"orders"}]}`,
		`{"volume":"v1","kind":"snapshot","label":"../x"}`,
		`{"kind":"custom"}`,
		`{"volume":"v1","kind":"custom","label":"q","args":[{"key":"k","value":"a\u0000b"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req MarkerRequest
		if json.Unmarshal(b, &req) != nil {
			return
		}
		rec, err := req.record()
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if err := rec.Validate(1 << 20); err != nil {
			t.Fatalf("accepted %+v, journal refuses it: %v", req, err)
		}
	})
}

// TestConcurrentGroupMarkersInOrder: group markers requested at the same
// time reach every member's journal in group-sequence order. The
// destination completes a group point only once and skips any marker whose
// group sequence is not above the last one done, so a marker journaled
// after a higher one would be dropped there (its snapshot never made) while
// the request reported success.
func TestConcurrentGroupMarkersInOrder(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	cfg := testConfig(t, dir,
		VolumeConfig{Name: "a", Path: filepath.Join(dir, "a.img"), Size: size},
		VolumeConfig{Name: "b", Path: filepath.Join(dir, "b.img"), Size: size})
	cfg.Groups = []GroupConfig{{Name: "g", Volumes: []string{"a", "b"}}}
	n, stop := runNode(t, cfg)
	const workers, each = 16, 32
	errc := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				if _, err := n.Marker(MarkerRequest{Group: "g", Kind: MarkerSnapshot, Label: "s"}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	stop()
	for _, vol := range []string{"a", "b"} {
		rp := newReplayer(size)
		rp.replayDir(t, filepath.Join(cfg.Buffer, vol))
		var last uint64
		for _, r := range rp.records {
			if r.Group != "g" {
				continue
			}
			if r.GroupSeq <= last {
				t.Fatalf("volume %s: group marker %d journaled after %d (write seq %d)", vol, r.GroupSeq, last, r.Seq)
			}
			last = r.GroupSeq
		}
		if last != workers*each {
			t.Errorf("volume %s: last group marker %d, want %d", vol, last, workers*each)
		}
	}
}
