package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/aimwan/aimwan/sim/sizing"
)

// TestUnknownYAMLKeys: for the configuration file of every daemon (and the
// sizing study), a misspelt key is named with its line, its place and the
// key meant; a key far from every known one lists the known keys; correct
// files pass.
func TestUnknownYAMLKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		into  any
		yaml  string
		wants []string // substrings of the error; none: no error
	}{
		{"src ok", &srcFile{}, "buffer: /b\nvolumes:\n  - name: v\n    path: /v\n", nil},
		{"src typo", &srcFile{}, "bufer: /b\n", []string{`line 1: unknown key "bufer" (did you mean "buffer"?)`}},
		{"src dash for underscore", &srcFile{}, "buffer-limit: 1GiB\n", []string{`(did you mean "buffer_limit"?)`}},
		{"src nested", &srcFile{}, "volumes:\n  - name: v\n    pth: /v\n", []string{`line 3: unknown key "pth" in volumes[0] (did you mean "path"?)`}},
		{"dst ok", &dstFile{}, "listen: 127.0.0.1:7800\nhooks:\n  flush: /bin/true\nvolumes:\n  - {name: v, path: /v, create: true}\n", nil},
		{"dst typo", &dstFile{}, "snapshot: /s\n", []string{`unknown key "snapshot" (did you mean "snapshots"?)`}},
		{"dst group", &dstFile{}, "groups:\n  - name: g\n    volume: [a]\n", []string{`in groups[0] (did you mean "volumes"?)`}},
		{"proxy ok", &proxyFile{}, "wan_peer: dr:7820\npeer_fp: [A-B]\n", nil},
		{"proxy case", &proxyFile{}, "Cache: /c\n", []string{`(did you mean "cache"?)`}},
		{"proxy two", &proxyFile{}, "cach: /c\nmissing_wait: 1m\n", []string{"unknown keys:", `line 1: unknown key "cach" (did you mean "cache"?)`, `line 2: unknown key "missing_wait" (did you mean "miss_wait"?)`}},
		{"proxy far", &proxyFile{}, "colour: blue\n", []string{`unknown key "colour" (known keys: cache, cache_size,`}},
		{"sizing nested struct", &sizing.File{}, "line:\n  rat: 2mbit\n", []string{`line 2: unknown key "rat" in line (did you mean "rate"?)`}},
		{"sizing pointer struct", &sizing.File{}, "files:\n  sise: 4MiB\n", []string{`in files (did you mean "size"?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			err := loadYAML(path, tc.into)
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("loadYAML: %v", err)
				}
				return
			}
			if exitCode(err) != exitUsage {
				t.Fatalf("err = %v, want a usage error", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "main.") || strings.Contains(err.Error(), "not found in type") {
				t.Errorf("error %q shows a Go type name", err)
			}
		})
	}
}

// TestCheckYAMLKeysInline: ",inline" structs contribute their keys; "-"
// fields have none.
func TestCheckYAMLKeysInline(t *testing.T) {
	type common struct {
		Metrics string `yaml:"metrics"`
	}
	type cfg struct {
		common `yaml:",inline"`
		Hidden string `yaml:"-"`
		Plain  string
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte("metrics: x\nplain: y\nhidden: z\n"), &root); err != nil {
		t.Fatal(err)
	}
	err := checkYAMLKeys(&root, &cfg{})
	if err == nil || strings.Contains(err.Error(), `key "metrics"`) || strings.Contains(err.Error(), `key "plain"`) ||
		!strings.Contains(err.Error(), `unknown key "hidden"`) {
		t.Fatalf("err = %v, want only hidden unknown", err)
	}
}

// TestUnknownFlags: an unknown flag is a usage error naming the flag meant,
// wherever it stands among the flags; values are not mistaken for flags and
// nothing after the flags is looked at.
func TestUnknownFlags(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := newFlagSet("proxy", "[flags]")
		fs.String("cache", "", "")
		fs.String("metrics", "", "")
		fs.Bool("prime", false, "")
		fs.Int("conns", 0, "")
		return fs
	}
	for _, tc := range []struct {
		args []string
		want string // "" = no error
	}{
		{[]string{"--cache", "/c", "--metrics=off", "-conns", "2", "--prime"}, ""},
		{[]string{"--cache", "--cach"}, ""}, // --cach is the value of --cache
		{[]string{"--prime", "--cach", "/c"}, "--cach (did you mean --cache?)"},
		{[]string{"--prime=true", "-metrcs", "x"}, "--metrcs (did you mean --metrics?)"},
		{[]string{"--cache=/c", "--conn=2"}, "--conn (did you mean --conns?)"},
		{[]string{"--zebra"}, "unknown flag --zebra; see 'aimwan proxy --help'"},
		{[]string{"--cache", "/c", "arg", "--zebra"}, ""}, // flags end at the first argument
		{[]string{"--", "--zebra"}, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := checkFlagNames(newFS(), tc.args)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.want != "" && (exitCode(err) != exitUsage || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want a usage error with %q", err, tc.want)
			}
		})
	}
	// Through a real command: the message reaches the user.
	err := run(t.Context(), []string{"proxy", "--lan-listen", "127.0.0.1:1", "--wan-per", "x"}, &strings.Builder{})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "did you mean --wan-peer?") {
		t.Fatalf("aimwan proxy --wan-per: %v", err)
	}
}

func TestClosest(t *testing.T) {
	known := []string{"buffer", "buffer_limit", "cache", "cache_size", "nbd"}
	for in, want := range map[string]string{
		"bufer": "buffer", "Buffer": "buffer", "buffer-limit": "buffer_limit", "cache_siz": "cache_size",
		"nb": "nbd", "xyz": "", "snapshots": "", "cache_": "cache",
	} {
		if got := closest(in, known); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCheckYAMLKeys: any YAML document is walked without panicking beside
// every daemon's configuration type, and an error always names a line.
func FuzzCheckYAMLKeys(f *testing.F) {
	for _, s := range []string{"buffer: /b\n", "volumes:\n  - name: v\n    pth: /v\n", "line:\n  rat: 2mbit\n",
		"hooks: {a: b}\n", "- a\n- b\n", "&a x: *a\n", "{cach: [1, {2: 3}]}\n", "files: ~\n"} {
		f.Add(s)
	}
	types := []any{&srcFile{}, &dstFile{}, &proxyFile{}, &sizing.File{}}
	f.Fuzz(func(t *testing.T, doc string) {
		var root yaml.Node
		if yaml.Unmarshal([]byte(doc), &root) != nil {
			return
		}
		for _, into := range types {
			if err := checkYAMLKeys(&root, into); err != nil && !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error without a line: %v", err)
			}
		}
	})
}
