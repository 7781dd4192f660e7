package link

import (
	"errors"
	"testing"
	"time"
)

func TestParseOutages(t *testing.T) {
	cases := []struct {
		in      string
		want    []Outage
		wantErr bool
	}{
		{"30s+10s", []Outage{{30 * time.Second, 10 * time.Second}}, false},
		{"0s+1m, 2h+5s", []Outage{{0, time.Minute}, {2 * time.Hour, 5 * time.Second}}, false},
		{"", nil, false},
		{"30s", nil, true},
		{"30s+0s", nil, true},
		{"-1s+1s", nil, true},
		{"x+1s", nil, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseOutages(c.in)
			if (err != nil) != c.wantErr {
				t.Fatalf("ParseOutages(%q) error %v, want error %v", c.in, err, c.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Errorf("error %v does not wrap ErrBadConfig", err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("item %d = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestParseProbability(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		err  bool
	}{{"0.1%", 0.001, false}, {"0.25", 0.25, false}, {"100%", 1, false}, {"101%", 0, true}, {"-1", 0, true}, {"x", 0, true}}
	for _, c := range cases {
		got, err := ParseProbability(c.in)
		if (err != nil) != c.err || (err == nil && (got-c.want) > 1e-12) {
			t.Errorf("ParseProbability(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParseOutages(f *testing.F) {
	for _, s := range []string{"30s+10s", "0s+1m,2h+5s", "", "+", "1s+-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ParseOutages(s)
		if err != nil {
			return
		}
		for _, o := range out {
			if o.Start < 0 || o.Duration <= 0 {
				t.Fatalf("ParseOutages(%q) accepted %v", s, o)
			}
		}
	})
}

func FuzzParseProbability(f *testing.F) {
	for _, s := range []string{"0.1%", "0.5", "100%", "1e-3", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProbability(s)
		if err == nil && !(p >= 0 && p <= 1) {
			t.Fatalf("ParseProbability(%q) = %v, outside [0, 1]", s, p)
		}
	})
}
