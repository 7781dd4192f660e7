package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aimwan/aimwan/sim/workload"
)

func TestSimWorkload(t *testing.T) {
	dir := t.TempDir()
	err := run(context.Background(), []string{"sim", "workload", "--out", dir, "--template-size", "1MiB", "--clones", "2", "--seed", "9"}, os.Stdout)
	if err != nil {
		t.Fatalf("sim workload: %v", err)
	}
	tm, err := workload.NewTemplate(workload.Config{Size: 1 << 20, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	for name, im := range map[string]*workload.Image{"template.img": tm.Image(), "clone-2.img": tm.Clone(2)} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		im.WriteTo(&want) //nolint:errcheck
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s differs from the generator's output", name)
		}
	}
}

func TestSimUsageErrors(t *testing.T) {
	cases := [][]string{
		{"sim"},
		{"sim", "nope"},
		{"sim", "workload"},
		{"sim", "workload", "--out", "x", "--template-size", "lots"},
		{"sim", "workload", "--out", "x", "--seed", "-3"},
		{"sim", "link", "--to", "127.0.0.1:1", "--rate", "fast"},
		{"sim", "link", "--to", "127.0.0.1:1", "--loss", "200%"},
		{"sim", "link", "--to", "127.0.0.1:1", "--outage", "soon"},
		{"sim", "link"},
		{"sim", "size"},
	}
	for _, args := range cases {
		if err := run(context.Background(), args, os.Stdout); exitCode(err) != exitUsage {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

func TestSimSize(t *testing.T) {
	out := t.TempDir()
	cfg := filepath.Join("..", "..", "sim", "sizing", "testdata", "study.yaml")
	if err := run(context.Background(), []string{"sim", "size", "--config", cfg, "--out", out}, os.Stdout); err != nil {
		t.Fatalf("sim size: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "sizing.json"))
	if err != nil {
		t.Fatal(err)
	}
	var o sizingOutput
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("sizing.json: %v", err)
	}
	if len(o.Volumes) != 2 || o.Result == nil || len(o.Result.Samples) < 100 || o.Sweep == nil {
		t.Errorf("sizing.json lacks volumes, samples or the sweep: %d volumes", len(o.Volumes))
	}
	if _, err := os.Stat(filepath.Join(out, "curves.csv")); err != nil {
		t.Error(err)
	}
}
