package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchFixture is the reports package's recorded bench run.
var benchFixture = filepath.Join("..", "..", "reports", "testdata", "bench")

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		file  string // output file to check, "" = stdout
		check func(t *testing.T, out []byte)
	}{
		{"html file", []string{"--in", benchFixture, "--out", filepath.Join(dir, "r.html")}, "r.html", func(t *testing.T, out []byte) {
			if !bytes.HasPrefix(out, []byte("<!DOCTYPE html>")) || bytes.Count(out, []byte("<svg")) != 6 {
				t.Errorf("not an HTML page with 6 charts: %.200s", out)
			}
		}},
		{"md by extension", []string{"--in", benchFixture, "--out", filepath.Join(dir, "r.md")}, "r.md", func(t *testing.T, out []byte) {
			if !bytes.HasPrefix(out, []byte("# aimwan replication report")) {
				t.Errorf("not markdown: %.200s", out)
			}
		}},
		{"json to stdout", []string{"--in", benchFixture, "--format", "json", "--title", "T"}, "", func(t *testing.T, out []byte) {
			var p struct{ Title string }
			if err := json.Unmarshal(out, &p); err != nil || p.Title != "T" {
				t.Errorf("json %v, title %q", err, p.Title)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			if err := reportMain(tt.args, &stdout); err != nil {
				t.Fatal(err)
			}
			out := stdout.Bytes()
			if tt.file != "" {
				var err error
				if out, err = os.ReadFile(filepath.Join(dir, tt.file)); err != nil {
					t.Fatal(err)
				}
			}
			tt.check(t, out)
		})
	}
}

func TestReportCommandErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		usage bool
	}{
		{"no in", []string{"--out", "x.html"}, true},
		{"html without out", []string{"--in", benchFixture}, true},
		{"bad format", []string{"--in", benchFixture, "--format", "pdf"}, true},
		{"extra argument", []string{"--in", benchFixture, "extra"}, true},
		{"missing folder", []string{"--in", filepath.Join(t.TempDir(), "nope"), "--format", "md"}, false},
		{"unwritable out", []string{"--in", benchFixture, "--out", filepath.Join(t.TempDir(), "no", "such", "r.html")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reportMain(tt.args, &bytes.Buffer{})
			if err == nil {
				t.Fatal("no error")
			}
			var ue *usageError
			if errors.As(err, &ue) != tt.usage {
				t.Fatalf("err %v: usage error %v, want %v", err, !tt.usage, tt.usage)
			}
			if !strings.Contains(err.Error(), "report") {
				t.Errorf("error %q does not say it is from report", err)
			}
		})
	}
}
