package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	os.WriteFile(a, bytes.Repeat([]byte{1}, 100000), 0o644)
	os.WriteFile(b, bytes.Repeat([]byte{1}, 100000), 0o644)
	cb := bytes.Repeat([]byte{1}, 100000)
	cb[10], cb[50000] = 2, 2
	os.WriteFile(c, cb, 0o644)
	cases := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{"identical", []string{a, b}, exitOK, []string{"identical"}},
		{"different", []string{a, c}, exitFailure, []string{"DIFFERENT", "10 ", "50000 "}},
		{"limited", []string{"--max", "1", a, c}, exitFailure, []string{"raise --max"}},
		{"json", []string{"--json", a, c}, exitFailure, []string{`"Equal": false`}},
		{"one image", []string{a}, exitUsage, nil},
		{"missing", []string{a, filepath.Join(dir, "nope")}, exitFailure, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := verify(tc.args, &out)
			if exitCode(err) != tc.code {
				t.Fatalf("exit %d (%v), want %d", exitCode(err), err, tc.code)
			}
			if tc.code == exitFailure && len(tc.out) > 0 && !errors.Is(err, silentFailure) {
				t.Fatalf("a difference should be a silent failure, got %v", err)
			}
			for _, w := range tc.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
