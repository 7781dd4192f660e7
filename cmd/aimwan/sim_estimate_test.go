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

func TestSimEstimate(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	data := bytes.Repeat([]byte("aimwan offline estimate "), 200_000) // 4.8 MB, one unique pattern
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, out string)
	}{
		{"table", []string{"--quiet", img, img}, exitOK, func(t *testing.T, out string) {
			if !strings.Contains(out, "offline estimate:") || !strings.Contains(out, "compressor:") || !strings.Contains(out, img) {
				t.Errorf("output:\n%s", out)
			}
		}},
		{"json", []string{"--json", img, img}, exitOK, func(t *testing.T, out string) {
			var r struct {
				Bytes         int64 `json:"bytes"`
				EstimateBytes int64 `json:"estimate_bytes"`
				Images        []struct {
					NewChunks int64 `json:"new_chunks"`
				} `json:"images"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			if r.Bytes != 2*int64(len(data)) || r.EstimateBytes <= 0 || r.EstimateBytes > int64(len(data))/10 || len(r.Images) != 2 || r.Images[1].NewChunks != 0 {
				t.Errorf("result %+v", r)
			}
		}},
		{"no image", nil, exitUsage, nil},
		{"a folder", []string{dir}, exitUsage, nil},
		{"missing file", []string{filepath.Join(dir, "nope.img")}, exitFailure, nil},
		{"bad flag", []string{"--fast", img}, exitUsage, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := simEstimate(context.Background(), tc.args, &out, &errOut)
			if exitCode(err) != tc.code {
				t.Fatalf("exit %d (%v), want %d", exitCode(err), err, tc.code)
			}
			if tc.check != nil {
				tc.check(t, out.String())
			}
		})
	}
}
