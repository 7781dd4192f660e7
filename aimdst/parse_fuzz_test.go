package aimdst

import (
	"encoding/json"
	"strings"
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

// FuzzParseKeep: a parsed keep list has no negative count, and its String
// form parses back to the same counts.
func FuzzParseKeep(f *testing.F) {
	for _, s := range []string{"24 hourly, 7 daily, 4 weekly", "keep last 4, min-age 1h", "last 1", "3 monthly,2 yearly",
		"keep", "", "24 hourlies", "last -1", "1 daily, 1 daily", "min-age 0s", "last 100000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, minAge, err := ParseKeep(s)
		if err != nil {
			return
		}
		if k.Last < 0 || minAge < 0 || (k == Keep{} && minAge == 0) {
			t.Fatalf("ParseKeep(%q) accepted %+v, min-age %v", s, k, minAge)
		}
		if k == (Keep{}) {
			return // only a min-age: String is empty
		}
		k2, _, err := ParseKeep(k.String())
		if err != nil || k2 != k {
			t.Fatalf("round trip of %q: %q gives %+v, %v", s, k.String(), k2, err)
		}
	})
}

// FuzzValidLabel: a label delete accepts never names a path: no separator,
// no leading dot, not empty.
func FuzzValidLabel(f *testing.F) {
	for _, s := range []string{"s1", "auto-20261202-1500", "../x", "a/b", ".hidden", "", "a.b", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validLabel(s) != nil {
			return
		}
		if s == "" || s[0] == '.' || strings.ContainsAny(s, "/\\\x00") || len(s) > 200 {
			t.Fatalf("validLabel accepted %q", s)
		}
	})
}
