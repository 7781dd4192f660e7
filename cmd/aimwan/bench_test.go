package main

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/aimwan/aimwan/sim/bench"
)

// benchArgs is what benchConfig returned.
type benchArgs struct {
	cfg    bench.Config
	report bool
}

func TestBenchConfig(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, c benchArgs)
	}{
		{"defaults", []string{"--out", "d"}, exitOK, func(t *testing.T, c benchArgs) {
			// Rate and cross traffic 0: the scale's line (bench.Config).
			if c.cfg.Scale != "small" || c.cfg.Rate != 0 || c.cfg.Cross != 0 || c.cfg.RTT != 40*time.Millisecond || c.cfg.Passthrough != 0 ||
				c.cfg.Seed != 1 || c.cfg.Prime || c.cfg.NoLink || !c.report || c.cfg.Bin == "" || c.cfg.Thin || c.cfg.NoEstimate || c.cfg.Limit != 0 {
				t.Errorf("defaults: %+v report=%v", c.cfg, c.report)
			}
		}},
		{"everything", []string{"--out", "d", "--scale", "tiny", "--images", "a,b", "--images", "c", "--seed", "7",
			"--rate", "1mbit", "--rtt", "80ms", "--cross", "0", "--prime", "--template", "t", "--passthrough", "20s", "--no-report"},
			exitOK, func(t *testing.T, c benchArgs) {
				if c.cfg.Scale != "tiny" || len(c.cfg.Images) != 3 || c.cfg.Images[2] != "c" || c.cfg.Seed != 7 ||
					c.cfg.Rate != 125_000 || c.cfg.RTT != 80*time.Millisecond || c.cfg.Cross != -1 || !c.cfg.Prime ||
					c.cfg.Template != "t" || c.cfg.Passthrough != 20*time.Second || c.report {
					t.Errorf("parsed: %+v report=%v", c.cfg, c.report)
				}
			}},
		{"images space separated", []string{"--images", "a.img", "b.img", "c.img", "--out", "d"}, exitOK, func(t *testing.T, c benchArgs) {
			if !reflect.DeepEqual(c.cfg.Images, []string{"a.img", "b.img", "c.img"}) || c.cfg.Out != "d" {
				t.Errorf("parsed: %+v", c.cfg)
			}
		}},
		{"images spaced and commas", []string{"--out", "d", "--images", "a,b", "c", "--images=e"}, exitOK, func(t *testing.T, c benchArgs) {
			if !reflect.DeepEqual(c.cfg.Images, []string{"a", "b", "c", "e"}) {
				t.Errorf("parsed: %+v", c.cfg)
			}
		}},
		{"seed, unlimited, no pass-through", []string{"--out", "d", "--scale", "seed", "--rate", "unlimited", "--passthrough", "none", "--thin",
			"--limit", "2h", "--no-estimate"}, exitOK, func(t *testing.T, c benchArgs) {
			if c.cfg.Scale != "seed" || !math.IsInf(c.cfg.Rate, 1) || c.cfg.Passthrough >= 0 || !c.cfg.Thin || c.cfg.Limit != 2*time.Hour || !c.cfg.NoEstimate {
				t.Errorf("parsed: %+v", c.cfg)
			}
		}},
		{"proxy args", []string{"--out", "d", "--proxy-arg=--cache-size=4GiB", "--proxy-arg", "--max-memory=64MiB"}, exitOK, func(t *testing.T, c benchArgs) {
			if !reflect.DeepEqual(c.cfg.ProxyArgs, []string{"--cache-size=4GiB", "--max-memory=64MiB"}) {
				t.Errorf("parsed: %+v", c.cfg.ProxyArgs)
			}
		}},
		{"passthrough 0 is none", []string{"--out", "d", "--passthrough", "0"}, exitOK, func(t *testing.T, c benchArgs) {
			if c.cfg.Passthrough >= 0 {
				t.Errorf("parsed: %+v", c.cfg)
			}
		}},
		{"bad passthrough", []string{"--out", "d", "--passthrough", "soon"}, exitUsage, nil},
		{"negative passthrough", []string{"--out", "d", "--passthrough", "-5s"}, exitUsage, nil},
		{"paused line", []string{"--out", "d", "--rate", "0"}, exitUsage, nil},
		{"unlimited cross", []string{"--out", "d", "--cross", "unlimited"}, exitUsage, nil},
		{"negative limit", []string{"--out", "d", "--limit", "-1m"}, exitUsage, nil},
		{"no out", nil, exitUsage, nil},
		{"bad scale", []string{"--out", "d", "--scale", "huge"}, exitUsage, nil},
		{"bad seed", []string{"--out", "d", "--seed", "-1"}, exitUsage, nil},
		{"bad rate", []string{"--out", "d", "--rate", "fast"}, exitUsage, nil},
		{"bad cross", []string{"--out", "d", "--cross", "lots"}, exitUsage, nil},
		{"bad rtt", []string{"--out", "d", "--rtt", "-1s"}, exitUsage, nil},
		{"argument", []string{"--out", "d", "extra"}, exitUsage, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, report, err := benchConfig(tc.args)
			if exitCode(err) != tc.code {
				t.Fatalf("exit %d (%v), want %d", exitCode(err), err, tc.code)
			}
			if tc.check != nil {
				tc.check(t, benchArgs{cfg, report})
			}
		})
	}
}
