package aimdst

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// TestSnapshotFileSparse copies a file with holes and checks content, size,
// and that the holes stay holes.
func TestSnapshotFileSparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "v.img")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("aimwan!"), 1000)
	for _, off := range []int64{0, 3 << 20, size - int64(len(data))} {
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	dst := filepath.Join(dir, "snaps", "v", "s.img")
	method, err := snapshotFile(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := testkit.ReadFile(t, dst), testkit.ReadFile(t, src); !bytes.Equal(got, want) {
		t.Fatalf("snapshot (%s) content: %s", method, testkit.FirstDiff(want, got))
	}
	var st unix.Stat_t
	if err := unix.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if method == methodSparse && st.Blocks*512 > 1<<20 {
		t.Errorf("sparse snapshot of 3 small extents allocates %d bytes", st.Blocks*512)
	}
	// Taking it again replaces it atomically; no temp file is left.
	if _, err := snapshotFile(src, dst); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Fatalf("snapshot folder holds %d entries, want 1", len(ents))
	}
}

// TestCustomMarkerHook runs the hook with the marker in its environment and
// goes on when a hook fails or hangs.
func TestCustomMarkerHook(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hook.out")
	markers := map[int]journal.Record{
		3:  {Kind: journal.KindCustom, Label: "app", Args: []journal.KV{{Key: "db", Value: "orders"}, {Key: "mode-x", Value: "quiesce"}}},
		8:  {Kind: journal.KindCustom, Label: "fails"},
		15: {Kind: journal.KindCustom, Label: "nohook"},
	}
	g := smallJournal(t, 8, markers)
	tn := newTestNode(t, func(c *Config) {
		c.Hooks = map[string]string{
			"app":   `echo "$AIMWAN_VOLUME $AIMWAN_LABEL $AIMWAN_SEQ $AIMWAN_ARG_DB $AIMWAN_ARG_MODE_X" >> ` + out,
			"fails": "echo broken >&2; exit 3",
		}
		c.HookTimeout = time.Minute // never reached: these hooks end at once
	})
	deliverAll(t, tn.n, "vol", g.files)
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, g.final) {
		t.Fatalf("image: %s", testkit.FirstDiff(g.final, got))
	}
	line := strings.TrimSpace(string(testkit.ReadFile(t, out)))
	fields := strings.Fields(line)
	if len(fields) != 5 || fields[0] != "vol" || fields[1] != "app" || fields[3] != "orders" || fields[4] != "quiesce" {
		t.Fatalf("hook environment: %q", line)
	}
	if v := testutilCounter(t, tn.n.metrics.hookFailures.WithLabelValues("vol")); v != 1 {
		t.Fatalf("hook failures counted %v, want 1", v)
	}
}

// TestHangingHookCutOff: a hook that outlives HookTimeout is killed, counted
// as failed, and destage goes on.
func TestHangingHookCutOff(t *testing.T) {
	g := smallJournal(t, 8, map[int]journal.Record{12: {Kind: journal.KindCustom, Label: "hangs"}})
	tn := newTestNode(t, func(c *Config) {
		c.Hooks = map[string]string{"hangs": "sleep 60"}
		c.HookTimeout = 100 * time.Millisecond
	})
	deliverAll(t, tn.n, "vol", g.files)
	start := time.Now()
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("destage took %v: the hanging hook was not cut off", el)
	}
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, g.final) {
		t.Fatalf("image: %s", testkit.FirstDiff(g.final, got))
	}
	if v := testutilCounter(t, tn.n.metrics.hookFailures.WithLabelValues("vol")); v != 1 {
		t.Fatalf("hook failures counted %v, want 1", v)
	}
}
