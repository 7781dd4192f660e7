package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
)

// TestDstRetentionConfig: retention policies from YAML and from flags
// (which replace the YAML list), and the refusals.
func TestDstRetentionConfig(t *testing.T) {
	dir := t.TempDir()
	key, fp := testKey(t)
	yml := filepath.Join(dir, "dst.yaml")
	os.WriteFile(yml, []byte(`buffer: /srv/buf
key: `+key+`
peer_fp: [`+fp+`]
volumes:
  - {name: a, path: /srv/a.img}
  - {name: b, path: /srv/b.img}
retention:
  - keep: 24 hourly, 7 daily, 4 weekly
    timezone: Europe/Berlin
  - volumes: [a]
    match: "*"
    keep: last 10
    min_age: 2h
  - group: app
    keep: 12 monthly
`), 0o600)
	f, err := dstFlags([]string{"--config", yml})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dstConfig(f, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Retention) != 3 {
		t.Fatalf("retention %+v", c.Retention)
	}
	def, vol, grp := c.Retention[0], c.Retention[1], c.Retention[2]
	if def.Keep != (aimdst.Keep{Hourly: 24, Daily: 7, Weekly: 4}) || def.Location.String() != "Europe/Berlin" || def.Match != "" {
		t.Errorf("default policy %+v", def)
	}
	if vol.Keep.Last != 10 || vol.MinAge != 2*time.Hour || vol.Match != "*" || vol.Volumes[0] != "a" {
		t.Errorf("volume policy %+v", vol)
	}
	if grp.Group != "app" || grp.Keep.Monthly != 12 {
		t.Errorf("group policy %+v", grp)
	}
	f, err = dstFlags([]string{"--config", yml, "--retention", "last 3, min-age 30m", "--retention", "a,b=6 hourly",
		"--retention", "group:app=2 daily", "--retention-match", "hourly-*", "--retention-timezone", "Local"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = dstConfig(f, nil, nil); err != nil {
		t.Fatal(err)
	}
	r := c.Retention
	if len(r) != 3 || r[0].Keep.Last != 3 || r[0].MinAge != 30*time.Minute || len(r[0].Volumes) != 0 || r[0].Group != "" ||
		strings.Join(r[1].Volumes, ",") != "a,b" || r[1].Keep.Hourly != 6 || r[2].Group != "app" || r[2].Keep.Daily != 2 ||
		r[1].Match != "hourly-*" || r[2].Location != time.Local {
		t.Fatalf("flag policies %+v", r)
	}
	for _, bad := range [][]string{
		{"--retention", "24 hourlies"},
		{"--retention", "x=24 hourly"}, // not a volume: NewNode refuses it
		{"--retention", "24 hourly", "--retention-timezone", "Mars/Olympus"},
		{"--retention-match", "x*"},
	} {
		f, err := dstFlags(append([]string{"--buffer", dir, "--volume", "a=" + filepath.Join(dir, "a.img") + ",create", "--key", key, "--peer-fp", fp}, bad...))
		if err == nil {
			var c aimdst.Config
			if c, err = dstConfig(f, nil, nil); err == nil {
				c.Logger = nil
				_, err = aimdst.NewNode(c)
			}
		}
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSrcScheduleConfig: schedules from YAML and from flags.
func TestSrcScheduleConfig(t *testing.T) {
	dir := t.TempDir()
	key, fp := testKey(t)
	yml := filepath.Join(dir, "src.yaml")
	os.WriteFile(yml, []byte(`buffer: /var/buf
key: `+key+`
peer_fp: [`+fp+`]
volumes:
  - {name: vm1, path: /img/vm1.img}
groups:
  - {name: app, volumes: [vm1]}
schedules:
  - {volume: vm1, every: 15m}
  - {group: app, every: 1h, prefix: hourly}
`), 0o644)
	cfg, err := srcConfig([]string{"--config", yml})
	if err != nil {
		t.Fatal(err)
	}
	want := []aimsrc.ScheduleConfig{{Volume: "vm1", Every: 15 * time.Minute}, {Group: "app", Every: time.Hour, Prefix: "hourly"}}
	if len(cfg.Schedules) != 2 || cfg.Schedules[0] != want[0] || cfg.Schedules[1] != want[1] {
		t.Fatalf("schedules %+v", cfg.Schedules)
	}
	if cfg, err = srcConfig([]string{"--config", yml, "--schedule", "vm1=5m"}); err != nil || len(cfg.Schedules) != 1 ||
		cfg.Schedules[0].Every != 5*time.Minute {
		t.Fatalf("flag schedule: %+v, %v", cfg.Schedules, err)
	}
	for _, bad := range []string{"vm1", "vm1=soon", "vm1=5m,every=2"} {
		if _, err := srcConfig([]string{"--config", yml, "--schedule", bad}); exitCode(err) != exitUsage {
			t.Errorf("--schedule %q: %v, want a usage error", bad, err)
		}
	}
}

func TestPrintSnapshots(t *testing.T) {
	var out bytes.Buffer
	at := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	printSnapshots(&out, aimdst.SnapshotList{Policies: []string{"default: keep 24 hourly of labels auto-* (UTC)"},
		Snapshots: []aimdst.SnapshotInfo{
			{Volume: "db", Label: "auto-20261202-1500", PointTime: at, Taken: at.Add(3 * time.Second), SizeBytes: 64 << 20,
				AllocatedBytes: 12 << 20, Method: "sparse copy", KeptBy: []string{"hourly", "daily"}},
			{Volume: "db", Label: "g1", Taken: at, Group: "app", GroupSeq: 7, Members: []string{"db", "logs"},
				KeptBy: []string{aimdst.KeptUncovered}, InUse: true},
		}})
	for _, want := range []string{"retention default: keep 24 hourly", "auto-20261202-1500", "2026-12-02 15:00:00",
		"2026-12-02 15:00:03", "64.0 MiB", "12.0 MiB", "sparse copy", "hourly,daily", "app #7 (db,logs)", "not-covered (in use)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
