package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimdst"
)

func TestDstFlags(t *testing.T) {
	dir := t.TempDir()
	key, fp := testKey(t)
	yml := filepath.Join(dir, "dst.yaml")
	os.WriteFile(yml, []byte(`key: `+key+`
peer_fp: [`+fp+`]
max_conns: 10
buffer: /srv/buf
listen: 127.0.0.1:9000
buffer_limit: 1GiB
hook_timeout: 30s
volumes:
  - {name: a, path: /srv/a.img}
hooks: {app: "echo from-yaml"}
groups:
  - {name: g, volumes: [a]}
`), 0o600)
	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, c aimdst.Config, f dstFile)
		usage bool
	}{
		{"yaml only", []string{"--config", yml}, func(t *testing.T, c aimdst.Config, f dstFile) {
			if c.BufferDir != "/srv/buf" || c.BufferLimit != 1<<30 || c.Identity == nil || len(c.Pins) != 1 || c.MaxConns != 10 || c.HookTimeout != 30*time.Second || f.Listen != "127.0.0.1:9000" ||
				len(c.Volumes) != 1 || c.Hooks["app"] != "echo from-yaml" || !reflect.DeepEqual(c.Groups["g"], []string{"a"}) {
				t.Fatalf("%+v", c)
			}
		}, false},
		{"flags override", []string{"--config", yml, "--buffer", "/b", "--volume", "x=/x.img,create", "--volume", "y=/y.img",
			"--hook", "snap=echo a=b,c", "--group", "h=x,y"}, func(t *testing.T, c aimdst.Config, f dstFile) {
			want := []aimdst.VolumeConfig{{Name: "x", Path: "/x.img", Create: true}, {Name: "y", Path: "/y.img"}}
			if c.BufferDir != "/b" || !reflect.DeepEqual(c.Volumes, want) || c.Hooks["snap"] != "echo a=b,c" || len(c.Hooks) != 1 ||
				!reflect.DeepEqual(c.Groups, map[string][]string{"h": {"x", "y"}}) {
				t.Fatalf("%+v", c)
			}
		}, false},
		{"identity and limits", []string{"--config", yml, "--part-expiry", "3m", "--no-rebind-snapshot"},
			func(t *testing.T, c aimdst.Config, f dstFile) {
				if c.PartExpiry != 3*time.Minute || !c.NoRebindSnapshot {
					t.Fatalf("%+v", c)
				}
			}, false},
		{"bad part expiry", []string{"--buffer", "/b", "--volume", "a=/a", "--part-expiry", "-1s"}, nil, true},
		{"volumes space separated", []string{"--volume", "x=/x.img,create", "y=/y.img", "--buffer", "/b", "--key", key, "--peer-fp", fp}, func(t *testing.T, c aimdst.Config, f dstFile) {
			want := []aimdst.VolumeConfig{{Name: "x", Path: "/x.img", Create: true}, {Name: "y", Path: "/y.img"}}
			if c.BufferDir != "/b" || !reflect.DeepEqual(c.Volumes, want) {
				t.Fatalf("%+v", c)
			}
		}, false},
		{"no buffer", []string{"--volume", "a=/a"}, nil, true},
		{"no volume", []string{"--buffer", "/b"}, nil, true},
		{"bad volume option", []string{"--buffer", "/b", "--volume", "a=/a,fast"}, nil, true},
		{"bad hook", []string{"--buffer", "/b", "--volume", "a=/a", "--hook", "nolabel"}, nil, true},
		{"bad group", []string{"--buffer", "/b", "--volume", "a=/a", "--group", "g="}, nil, true},
		{"bad limit", []string{"--buffer", "/b", "--volume", "a=/a", "--buffer-limit", "lots"}, nil, true},
		{"stray argument", []string{"--buffer", "/b", "stray"}, nil, true},
		{"no key", []string{"--buffer", "/b", "--volume", "a=/a", "--peer-fp", fp}, nil, true},
		{"no pin", []string{"--buffer", "/b", "--volume", "a=/a", "--key", key}, nil, true},
		{"negative max conns", []string{"--buffer", "/b", "--volume", "a=/a", "--key", key, "--peer-fp", fp, "--max-conns", "-1"}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := dstFlags(tc.args)
			var c aimdst.Config
			if err == nil {
				c, err = dstConfig(f, nil, nil)
			}
			if tc.usage {
				if exitCode(err) != exitUsage {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c, f)
		})
	}
}

func TestPrintDstStatus(t *testing.T) {
	var out bytes.Buffer
	now := time.Now()
	printDstStatus(&out, aimdst.Status{Node: "dst", BufferBytes: 2048, BufferLimit: 4096, BufferFull: true,
		Volumes: []aimdst.VolumeStatus{{Volume: "db", State: "offline: read-only", NewestWrite: now, TimeLatency: 1.5,
			DestagedSeq: 42, DestagedFile: 3, FilesWaiting: 2, BufferBytes: 2048, LastMarker: "s1", Stream: "00aa",
			Refused:     []aimdst.Refusal{{File: 7, Reason: "stream", Count: 3, Error: "file 7 is from journal stream 00bb"}},
			Quarantined: []aimdst.QuarantinedFile{{File: 9, Reason: "sequence", Path: "/q/9"}},
			Previous:    &aimdst.Binding{Stream: "00cc", File: 5, NewFile: 6, Snapshot: "/s/pre-init.img"}}},
		GroupErrors: []aimdst.GroupError{{Group: "g", GroupSeq: 2, Label: "x", Volume: "db", Error: "names member(s) ghost"}}})
	for _, want := range []string{"FULL", "db", "offline: read-only", "1.5s", "42", "s1", "stream 00aa", "REFUSED file 7",
		"QUARANTINED file 9", "before: stream 00cc", "/s/pre-init.img", "GROUP g #2", "ghost"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}
}
