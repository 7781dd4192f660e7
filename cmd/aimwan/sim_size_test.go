package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimSizePage(t *testing.T) {
	out := t.TempDir()
	cfg := filepath.Join("..", "..", "sim", "sizing", "testdata", "study.yaml")
	if err := run(context.Background(), []string{"sim", "size", "--config", cfg, "--out", out}, os.Stdout); err != nil {
		t.Fatalf("sim size: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "sizing.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, want := range []string{"What line do I need for an RPO of 1h0m0s", `id="src-data"`, `id="sweep-1-time-latency"`} {
		if !strings.Contains(html, want) {
			t.Errorf("sizing.html lacks %q", want)
		}
	}
}

func TestSimSizeFromBench(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join("..", "..", "sim", "sizing", "testdata", "bench-tiny")
	var w bytes.Buffer
	if err := runSizeFromBench(&w, dir, out); err != nil {
		t.Fatalf("sim size --from-bench: %v", err)
	}
	for _, want := range []string{"peak Src Data", "worst Time Latency", "phase optimize from"} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, w.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "validation.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Peak struct{ Predicted, Measured float64 } `json:"peak_backlog"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Peak.Measured <= 0 {
		t.Errorf("validation.json: %v, %+v", err, v)
	}
	if _, err := os.Stat(filepath.Join(out, "validation.html")); err != nil {
		t.Error(err)
	}
	for _, args := range [][]string{
		{"sim", "size", "--from-bench", dir, "--config", "x.yaml"},
	} {
		if err := run(context.Background(), args, os.Stdout); exitCode(err) != exitUsage {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if err := run(context.Background(), []string{"sim", "size", "--from-bench", t.TempDir()}, os.Stdout); err == nil {
		t.Error("--from-bench on an empty folder: no error")
	}
}
