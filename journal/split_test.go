package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sealedFiles writes a small journal and returns its sealed files' bytes.
func sealedFiles(t testing.TB) [][]byte {
	t.Helper()
	dir := t.TempDir()
	w := openTest(t, testConfig(dir, newClock()))
	for _, o := range []op{writeOp(0, 5000), zeroOp(8192, 4096, false), markerOp(Record{Kind: KindSnapshot, Label: "s"})} {
		apply(t, w, o)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	apply(t, w, markerOp(Record{Kind: KindCustom, Label: "c"})) // a file without payload
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for seq := uint64(1); seq <= 2; seq++ {
		b, err := os.ReadFile(filepath.Join(dir, FileName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestSplitJoin: Split gives header+index+footer and the payload region;
// Join rebuilds the exact file and refuses parts that do not belong
// together.
func TestSplitJoin(t *testing.T) {
	files := sealedFiles(t)
	for i, b := range files {
		meta, payload, err := Split(b)
		if err != nil {
			t.Fatalf("file %d: %v", i+1, err)
		}
		f, err := Parse("x", b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(payload, f.Payload()) || len(meta)+len(payload) != len(b) ||
			!bytes.Equal(meta[:HeaderSize], b[:HeaderSize]) || !bytes.Equal(meta[HeaderSize:], b[HeaderSize+len(payload):]) {
			t.Fatalf("file %d: split into %d+%d bytes that are not header+index+footer and the payload", i+1, len(meta), len(payload))
		}
		got, err := Join(meta, payload)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("file %d: Join: %v (equal: %v)", i+1, err, bytes.Equal(got, b))
		}
	}
	meta, payload, _ := Split(files[0])
	otherMeta, _, _ := Split(files[1])
	for _, tc := range []struct {
		name          string
		meta, payload []byte
		want          error
	}{
		{"payload one byte short", meta, payload[1:], ErrCorrupt},
		{"payload one byte long", meta, append(bytes.Clone(payload), 0), ErrCorrupt},
		{"another file's metadata", otherMeta, payload, ErrCorrupt},
		{"metadata cut short", meta[:HeaderSize+FooterSize-1], payload, ErrTruncated},
		{"no metadata", nil, payload, ErrTruncated},
	} {
		if _, err := Join(tc.meta, tc.payload); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, err := Split([]byte("not a journal file at all, just bytes")); err == nil {
		t.Error("Split of a foreign file succeeded")
	}
}

// FuzzSplitJoin: Split either refuses its input or Join rebuilds it
// exactly; Join never panics on any metadata and payload.
func FuzzSplitJoin(f *testing.F) {
	for _, b := range sealedFiles(f) {
		f.Add(b, 0)
	}
	f.Add([]byte("foreign"), 3)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if meta, payload, err := Split(b); err == nil {
			got, err := Join(meta, payload)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("Join(Split(b)): %v", err)
			}
		}
		if cut < 0 || cut > len(b) {
			return
		}
		if got, err := Join(b[:cut], b[cut:]); err == nil && len(got) != len(b) {
			t.Fatalf("Join returned %d bytes for %d in", len(got), len(b))
		}
	})
}
