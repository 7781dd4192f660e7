package reports

import (
	"testing"
)

func FuzzParsePhases(f *testing.F) {
	f.Add([]byte(`[{"name":"passthrough","start":"2026-11-22T06:00:00Z","end":"2026-11-22T06:01:00Z"},{"name":"optimize","start":"2026-11-22T06:01:00Z"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"name":"a","start":"2026-11-22T06:00:00Z","end":"2026-11-22T05:00:00Z"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParsePhases(b)
		if err != nil {
			return
		}
		for i, p := range ps {
			if p.Name == "" || p.Start.IsZero() || (!p.End.IsZero() && p.End.Before(p.Start)) {
				t.Fatalf("accepted bad phase %+v", p)
			}
			if i > 0 && p.Start.Before(ps[i-1].Start) {
				t.Fatal("phases not sorted")
			}
		}
	})
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"line_kbps":240,"passthrough_kbps":235,"effective_kbps":3425,"speedup":14.2,"peak_speedup":20,"logical_bytes":36000000000,"wire_bytes":2500000000,"elapsed_s":11016,"verified":true}`))
	f.Add([]byte(`{"line_kbps":-1}`))
	f.Add([]byte(`{"phases":[{"name":"optimize","start":"2026-11-22T06:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		if r.LineKBps < 0 || r.LogicalBytes < 0 || r.WireBytes < 0 || r.ElapsedS < 0 {
			t.Fatalf("accepted negative figures: %+v", r)
		}
		// Whatever parses must build a page without failing.
		if _, err := BuildPage(&Run{Result: r}, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
