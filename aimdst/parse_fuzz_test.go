package aimdst

import (
	"encoding/json"
	"testing"
)

// FuzzParseCursor: any bytes give a cursor or an error, never a panic, and a
// parsed cursor survives a round trip.
func FuzzParseCursor(f *testing.F) {
	f.Add([]byte(`{"file":3,"record":77,"time":"2026-11-22T06:00:00Z","marker":"s1"}`))
	f.Add([]byte(`{"file":0,"record":0}`))
	f.Add([]byte(`{"file":-1}`))
	f.Add([]byte(`{"file":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCursor(b)
		if err != nil {
			return
		}
		enc, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal parsed cursor %+v: %v", c, err)
		}
		c2, err := parseCursor(enc)
		if err != nil || c2.File != c.File || c2.Record != c.Record || !c2.Time.Equal(c.Time) || c2.Marker != c.Marker {
			t.Fatalf("round trip of %+v: %+v, %v", c, c2, err)
		}
	})
}

// FuzzParseSnapshotName: a parsed name has two valid names that rebuild it.
func FuzzParseSnapshotName(f *testing.F) {
	for _, s := range []string{"vol/s1", "a/b/c", "/x", "x/", "v.1/s", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, l, err := ParseSnapshotName(s)
		if err == nil && v+"/"+l != s {
			t.Fatalf("%q parsed as %q / %q", s, v, l)
		}
	})
}
