package aimsrc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit"
)

func TestParseVolume(t *testing.T) {
	tests := []struct {
		in      string
		want    VolumeConfig
		wantErr string
	}{
		{in: "vm1=/img/vm1.img", want: VolumeConfig{Name: "vm1", Path: "/img/vm1.img"}},
		{in: "vm-1=a.img,size=64MiB", want: VolumeConfig{Name: "vm-1", Path: "a.img", Size: 64 << 20}},
		{in: "vm1", wantErr: "want NAME=PATH"},
		{in: "=a.img", wantErr: "want NAME=PATH"},
		{in: "vm1=", wantErr: "want NAME=PATH"},
		{in: "../x=a.img", wantErr: "name"},
		{in: ".hidden=a.img", wantErr: "name"},
		{in: "a/b=a.img", wantErr: "name"},
		{in: "vm1=a.img,size=lots", wantErr: "size"},
		{in: "vm1=a.img,color=red", wantErr: "unknown option"},
		{in: "vm1=,size=1M", wantErr: "empty path"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVolume(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrConfig) {
					t.Fatalf("got %+v, %v; want error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseGroup(t *testing.T) {
	g, err := ParseGroup("db=vm1,vm2")
	if err != nil || g.Name != "db" || len(g.Volumes) != 2 || g.Volumes[1] != "vm2" {
		t.Fatalf("got %+v, %v", g, err)
	}
	for _, bad := range []string{"db", "db=", "db=vm1,,vm2", "d.b=vm1", "db=vm1,../x"} {
		if _, err := ParseGroup(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseGroup(%q): %v, want ErrConfig", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	dstID, srcID, _ := testkit.Identities()
	ok := func() Config {
		return Config{Buffer: "b", Volumes: []VolumeConfig{{Name: "a", Path: "a.img"}, {Name: "b", Path: "b.img"}},
			Identity: srcID, Pins: testkit.Pins(dstID)}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no buffer", func(c *Config) { c.Buffer = "" }, "--buffer"},
		{"no volumes", func(c *Config) { c.Volumes = nil }, "--volume"},
		{"dot name", func(c *Config) { c.Volumes[0].Name = ".." }, "volume name"},
		{"separator name", func(c *Config) { c.Volumes[0].Name = "a/b" }, "volume name"},
		{"duplicate volume", func(c *Config) { c.Volumes[1].Name = "a" }, "twice"},
		{"shared image", func(c *Config) { c.Volumes[1].Path = "a.img" }, "share the image"},
		{"shared image spelled ./", func(c *Config) { c.Volumes[1].Path = "./a.img" }, "share the image"},
		{"shared image spelled x/..", func(c *Config) { c.Volumes[1].Path = "x/../a.img" }, "share the image"},
		{"group unknown member", func(c *Config) { c.Groups = []GroupConfig{{Name: "g", Volumes: []string{"x"}}} }, "unknown volume"},
		{"group named like volume", func(c *Config) { c.Groups = []GroupConfig{{Name: "a", Volumes: []string{"a"}}} }, "already used"},
		{"group member twice", func(c *Config) { c.Groups = []GroupConfig{{Name: "g", Volumes: []string{"a", "a"}}} }, "twice"},
		{"empty group", func(c *Config) { c.Groups = []GroupConfig{{Name: "g"}} }, "no volumes"},
		{"negative limit", func(c *Config) { c.BufferLimit = -1 }, "buffer limit"},
		{"bad address", func(c *Config) { c.Push = "nowhere" }, "--push"},
		{"bad granularity", func(c *Config) { c.DirtyGranularity = 5000 }, "granularity"},
		{"bad node name", func(c *Config) { c.Node = "host.example.com" }, "node name"},
		{"no identity", func(c *Config) { c.Identity = nil }, "aimwan keygen"},
		{"no pins", func(c *Config) { c.Pins = nil }, "--peer-fp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.mutate(&c)
			err := c.withDefaults().validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want an ErrConfig naming %q", err, tc.want)
			}
		})
	}
}

// TestNewBadInput: New refuses bad volumes before touching anything.
func TestNewBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		vc   VolumeConfig
		want string
	}{
		{"missing image without size", VolumeConfig{Name: "v", Path: filepath.Join(dir, "none.img")}, "no such file"},
		{"size mismatch", VolumeConfig{Name: "v", Path: filepath.Join(dir, "small.img"), Size: 8192}, "size is"},
		{"directory as image", VolumeConfig{Name: "v", Path: dir}, "is a directory"},
		{"name with dots", VolumeConfig{Name: "..", Path: filepath.Join(dir, "x.img"), Size: 4096}, "volume name"},
	}
	if err := os.WriteFile(filepath.Join(dir, "small.img"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewNode(testConfig(t, dir, tc.vc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img")); err == nil {
		t.Error("image created for a refused volume name")
	}
}

// TestUnknownExport: a client asking for an export that does not exist is
// refused; the node keeps serving the real one.
func TestUnknownExport(t *testing.T) {
	dir := t.TempDir()
	n, _ := runNode(t, testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20}))
	for _, name := range []string{"nope", "../v1", ""} {
		if c, err := dialNBD(n.NBDAddr().String(), name); err == nil {
			c.close()
			t.Errorf("export %q: connected, want refusal", name)
		}
	}
	c := mustDialNBD(t, n.NBDAddr().String(), "v1")
	buf := make([]byte, 4096)
	if err := c.read(buf, 0); err != nil {
		t.Fatalf("read from the real export: %v", err)
	}
	if err := c.write(buf, 1<<20); err == nil {
		t.Error("write past the end accepted")
	}
}

func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"vm1=/img/a.img", "v=a,size=1G", "a=b,size=", "=", "x=y,z=w,size=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVolume(s)
		if err != nil {
			return
		}
		if v.Name == "" || v.Path == "" || v.Size < 0 || strings.ContainsAny(v.Name, "./") {
			t.Fatalf("ParseVolume(%q) accepted %+v", s, v)
		}
	})
}

func FuzzParseGroup(f *testing.F) {
	for _, s := range []string{"g=a,b", "g=", "g=a,,b", "=a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGroup(s)
		if err != nil {
			return
		}
		if g.Name == "" || len(g.Volumes) == 0 {
			t.Fatalf("ParseGroup(%q) accepted %+v", s, g)
		}
	})
}

func TestHostNodeName(t *testing.T) {
	for in, want := range map[string]string{
		"vm": "vm", "db1.example.com": "db1", "a b": "a-b", "": "src", ".x": "src",
		strings.Repeat("h", 70): strings.Repeat("h", 64),
	} {
		if got := hostNodeName(in); got != want {
			t.Errorf("hostNodeName(%q) = %q, want %q", in, got, want)
		}
	}
}
