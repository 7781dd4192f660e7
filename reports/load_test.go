package reports

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/internal/metrics"
)

func TestParseRecording(t *testing.T) {
	const good1 = `{"time":"2026-11-22T06:00:00Z","metrics":{"a_total":1,"b{volume=\"vm1\"}":"+Inf"}}`
	const good2 = `{"time":"2026-11-22T06:00:01Z","metrics":{"a_total":2,"c":"NaN","d":"-Inf"}}`
	tests := []struct {
		name    string
		in      string
		samples int
		wantErr bool
	}{
		{"empty", "", 0, false},
		{"two lines", good1 + "\n" + good2 + "\n", 2, false},
		{"blank lines", "\n" + good1 + "\n\n  \n" + good2 + "\n", 2, false},
		{"no final newline", good1 + "\n" + good2, 2, false},
		{"torn last line", good1 + "\n" + good2[:20], 1, false},
		{"bad middle line", good1 + "\n" + good2[:20] + "\n" + good1 + "\n", 0, true},
		{"bad final line with newline", good1 + "\n{}\n", 0, true},
		{"bad key", `{"time":"2026-11-22T06:00:00Z","metrics":{"a{x=}":1}}` + "\n", 0, true},
		{"bad value", `{"time":"2026-11-22T06:00:00Z","metrics":{"a":"lots"}}` + "\n", 0, true},
		{"not an object", "[1,2]\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseRecording("d", strings.NewReader(tt.in))
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrBadRecording) {
					t.Fatalf("err %v, want ErrBadRecording", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Samples) != tt.samples {
				t.Fatalf("%d samples, want %d", len(rec.Samples), tt.samples)
			}
		})
	}
	rec, err := ParseRecording("d", strings.NewReader(good1+"\n"+good2+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := rec.Samples[0].Values[`b{volume="vm1"}`]; !math.IsInf(v, 1) {
		t.Errorf("+Inf read as %v", v)
	}
	if v := rec.Samples[1].Values["c"]; !math.IsNaN(v) {
		t.Errorf("NaN read as %v", v)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	line := `{"time":"2026-11-22T06:00:00Z","metrics":{"a":1}}` + "\n"
	for _, n := range []string{"src.jsonl", "dst.jsonl", "ignored.json"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Daemon != "dst" || recs[1].Daemon != "src" {
		t.Fatalf("got %d recordings: %+v", len(recs), recs)
	}
}

func FuzzParseRecording(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-22T06:00:00Z","metrics":{"a_total":1,"b{volume=\"vm1\"}":"+Inf"}}` + "\n"))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"time":"2026-11-22T06:00:00Z","metrics":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := ParseRecording("fuzz", strings.NewReader(string(b)))
		if err != nil {
			return
		}
		// Whatever loads must build and render (text formats) without failing.
		page, err := BuildPage(&Run{Recordings: []*Recording{rec}}, BuildOptions{})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		for _, f := range []Format{FormatMarkdown, FormatJSON} {
			if err := WritePage(io.Discard, page, f); err != nil {
				t.Fatalf("render %s: %v", f, err)
			}
		}
		for _, s := range rec.Samples {
			if s.Time.IsZero() {
				t.Fatal("accepted a sample without time")
			}
			for k := range s.Values {
				if _, _, err := metrics.ParseKey(k); err != nil {
					t.Fatalf("accepted bad key %q", k)
				}
			}
		}
	})
}
