package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/transport/identity"
)

// testKey makes an identity with aimwan keygen and returns its folder and
// fingerprint.
func testKey(t *testing.T) (dir, fp string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "key")
	var out bytes.Buffer
	if err := runKeygen([]string{"--dir", dir}, &out); err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out.String())
	return dir, f[len(f)-1]
}

func TestSrcConfig(t *testing.T) {
	dir := t.TempDir()
	key, fp := testKey(t)
	yml := filepath.Join(dir, "src.yaml")
	os.WriteFile(yml, []byte(`
key: `+key+`
peer_fp: [`+fp+`]
buffer: /var/buf
push: 10.0.0.2:7800
buffer_limit: 1GiB
file_size: 2MiB
file_age: 500ms
volumes:
  - {name: vm1, path: /img/vm1.img, size: 64MiB}
  - {name: vm2, path: /img/vm2.img}
groups:
  - {name: db, volumes: [vm1, vm2]}
`), 0o644)
	cfg, err := srcConfig([]string{"--config", yml, "--push", "127.0.0.1:9999", "--file-age", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Buffer != "/var/buf" || cfg.Push != "127.0.0.1:9999" || cfg.BufferLimit != 1<<30 || cfg.Identity == nil || len(cfg.Pins) != 1 ||
		cfg.FileSize != 2<<20 || cfg.FileAge != time.Second || len(cfg.Volumes) != 2 ||
		cfg.Volumes[0].Size != 64<<20 || len(cfg.Groups) != 1 || cfg.Groups[0].Volumes[1] != "vm2" {
		t.Fatalf("config %+v", cfg)
	}
	cfg, err = srcConfig([]string{"--config", yml, "--volume", "x=/x.img,size=1M", "--group", "g=x"})
	if err != nil || len(cfg.Volumes) != 1 || cfg.Volumes[0].Name != "x" || cfg.Groups[0].Name != "g" {
		t.Fatalf("flags replace the YAML lists: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"--volume", "../x=/x.img"},
		{"--volume", "x=/x.img,size=big"},
		{"--group", "g"},
		{"--buffer-limit", "lots"},
		{"--file-age", "soon"},
		{"stray"},
		{"--buffer", dir, "--volume", "x=/x.img", "--peer-fp", fp},               // no --key
		{"--buffer", dir, "--volume", "x=/x.img", "--key", key},                  // no --peer-fp
		{"--buffer", dir, "--volume", "x=/x.img", "--key", dir, "--peer-fp", fp}, // not an identity
		{"--buffer", dir, "--volume", "x=/x.img", "--key", key, "--peer-fp", "nope"},
	} {
		if _, err := srcConfig(bad); exitCode(err) != exitUsage {
			t.Errorf("srcConfig(%q): %v, want a usage error", bad, err)
		}
	}
}

// TestSrcClients runs init, marker and status against a node in this process.
func TestSrcClients(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "v1.img")
	os.WriteFile(img, bytes.Repeat([]byte{1, 0, 0, 0}, 1<<19), 0o644)
	_, fp := testKey(t) // the next hop's (never dialed)
	key, _ := testKey(t)
	srcID, err := identity.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	pins, _ := identity.ParsePins("--peer-fp", []string{fp})
	buffer := filepath.Join(dir, "buf")
	n, err := aimsrc.NewNode(aimsrc.Config{Node: "t", Buffer: buffer, Identity: srcID, Pins: pins,
		Volumes: []aimsrc.VolumeConfig{{Name: "v1", Path: img}},
		Groups:  []aimsrc.GroupConfig{{Name: "g", Volumes: []string{"v1"}}},
		NBD:     "127.0.0.1:0", Control: "127.0.0.1:0", Metrics: "off", Push: "127.0.0.1:1",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ctl := n.ControlAddr().String()
	if err := runSrcStatus(ctx, []string{"--control", ctl}, &bytes.Buffer{}); exitCode(err) != exitUsage ||
		!strings.Contains(err.Error(), "--buffer") {
		t.Errorf("status without a way to the token: %v, want a usage error naming --buffer", err)
	}
	if err := runSrcStatus(ctx, []string{"--control", ctl, "--token", filepath.Join(dir, "none")}, &bytes.Buffer{}); err == nil {
		t.Error("status with a missing token file worked")
	}

	var out bytes.Buffer
	if err := runSrcInit(ctx, []string{"--control", ctl, "--buffer", buffer, "--volume", "v1"}, &out); err != nil {
		t.Fatalf("init: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "100.0%") || !strings.Contains(out.String(), "done") {
		t.Errorf("init output: %q", out.String())
	}
	out.Reset()
	if err := runSrcMarker(ctx, []string{"--control", ctl, "--token", n.TokenPath(), "--group", "g", "--custom", "quiesce", "--arg", "db=orders"}, &out); err != nil {
		t.Fatalf("marker: %v", err)
	}
	if !strings.Contains(out.String(), "group g (group seq 1)") {
		t.Errorf("marker output: %q", out.String())
	}
	out.Reset()
	yml := filepath.Join(dir, "src.yaml") // the node's own config gives address and buffer
	os.WriteFile(yml, []byte("control: "+ctl+"\nbuffer: "+buffer+"\n"), 0o600)
	if err := runSrcStatus(ctx, []string{"--config", yml}, &out); err != nil {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(out.String(), "v1") || !strings.Contains(out.String(), "normal") {
		t.Errorf("status output: %q", out.String())
	}
	out.Reset()
	if err := runSrcStatus(ctx, []string{"--control", ctl, "--buffer", buffer, "--json"}, &out); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st aimsrc.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st.Volumes) != 1 || st.Volumes[0].Init.Journaled != 2<<20 {
		t.Errorf("status --json: %v %+v", err, st)
	}
	for _, bad := range [][]string{
		{"--control", ctl, "--buffer", buffer, "--volume", "v1"},                                    // no label
		{"--control", ctl, "--buffer", buffer, "--volume", "v1", "--group", "g", "--snapshot", "s"}, // both targets
		{"--control", ctl, "--buffer", buffer, "--volume", "v1", "--snapshot", "s", "--arg", "a=b"},
		{"--control", ctl, "--buffer", buffer, "--volume", "v1", "--custom", "s", "--arg", "novalue"},
		{"--control", ctl, "--buffer", buffer, "--volume", "v1", "--custom", "s", "--arg", "k=a\x00b"}, // NUL: the hook could never get it
		{"--control", ctl, "--buffer", buffer, "--volume", "v1", "--custom", "s", "--arg", "k=line\nbreak"},
	} {
		if err := runSrcMarker(ctx, bad, &out); exitCode(err) != exitUsage {
			t.Errorf("marker %q: %v, want a usage error", bad, err)
		}
	}
	if err := runSrcMarker(ctx, []string{"--control", ctl, "--buffer", buffer, "--volume", "nope", "--snapshot", "s"}, &out); err == nil ||
		!strings.Contains(err.Error(), "nope") {
		t.Errorf("marker on an unknown volume: %v", err)
	}
}

// TestSrcCoalesceFlag: --coalesce (YAML coalesce) sets the window, the flag
// wins over the file, and bad values are usage errors naming the flag.
func TestSrcCoalesceFlag(t *testing.T) {
	dir := t.TempDir()
	key, fp := testKey(t)
	yml := filepath.Join(dir, "src.yaml")
	os.WriteFile(yml, []byte("key: "+key+"\npeer_fp: ["+fp+"]\nbuffer: /var/buf\ncoalesce: 30s\nvolumes:\n  - {name: vm1, path: /img/vm1.img}\n"), 0o644)
	cfg, err := srcConfig([]string{"--config", yml})
	if err != nil || cfg.Coalesce != 30*time.Second {
		t.Fatalf("YAML coalesce: %v, %v", cfg.Coalesce, err)
	}
	cfg, err = srcConfig([]string{"--config", yml, "--coalesce", "0"})
	if err != nil || cfg.Coalesce != 0 {
		t.Fatalf("--coalesce 0 over YAML: %v, %v", cfg.Coalesce, err)
	}
	if cfg, err = srcConfig([]string{"--buffer", dir, "--key", key, "--peer-fp", fp}); err != nil || cfg.Coalesce != 0 {
		t.Fatalf("default: %v, %v", cfg.Coalesce, err)
	}
	for _, bad := range []string{"soon", "-5s", "10"} {
		_, err := srcConfig([]string{"--buffer", dir, "--key", key, "--peer-fp", fp, "--coalesce", bad})
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--coalesce") {
			t.Errorf("--coalesce %q: %v, want a usage error naming --coalesce", bad, err)
		}
	}
	err = runSrc(context.Background(), []string{"--buffer", filepath.Join(dir, "b"), "--volume", "v=" + filepath.Join(dir, "v.img") + ",size=1M",
		"--coalesce", "10s", "--file-age", "1s", "--metrics", "off", "--nbd", "127.0.0.1:0", "--control", "127.0.0.1:0",
		"--key", key, "--peer-fp", fp})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--coalesce") {
		t.Errorf("--coalesce with another --file-age: %v, want a usage error", err)
	}
}
