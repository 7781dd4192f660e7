// Package testkit holds the helpers that aimwan's tests share, one copy of
// each:
//
//   - WaitFor: poll a condition with a deadline (never sleep and hope);
//   - CheckGolden, FirstDiff: golden files under testdata (-update rewrites
//     them) and where two outputs or images first differ;
//   - ReadFile: a file's content or a failed test;
//   - NeedTool, SkipOrFail: an external program a test needs, skipped
//     without it outside CI and failed in CI;
//   - Cutter: a TCP relay that breaks the connection after a byte count;
//   - Identities, Pins: node identities made once per test binary (a
//     server, a client and a stranger nobody pins), for the mutual TLS of
//     the push legs;
//   - StartProc, Proc.Restart, WaitPort, FreeAddr: daemons of the aimwan
//     binary owned by a test (stopped at its end, log tail on failure, data
//     races reported), on top of procs.
//
// Subpackages: procs (the process harness itself, which the bench and the
// chaos harness use too, so it does not import testing) and nbdtest (an
// in-memory NBD export and a loopback server for it). Only tests and
// test-support packages import testkit: it imports testing.
package testkit

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata golden files from the current output")

// WaitFor polls cond every 5 ms until it holds, and fails the test when it
// still does not hold after timeout. what names the condition in the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CheckGolden compares got with the file testdata/name of the package under
// test, or rewrites that file when the test runs with -update. A difference
// fails the test naming the first differing line (text) or byte (binary).
func CheckGolden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run '%s' -update in the package to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file: %s\n(run with -update if the change is intended)", name, FirstDiff(want, got))
	}
}

// FirstDiff describes where want and got first differ: the line for text,
// the byte offset for binary data (images, files), or "equal".
func FirstDiff(want, got []byte) string {
	if isText(want) && isText(got) {
		wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
		for i := range max(len(wl), len(gl)) {
			w, g := lineAt(wl, i), lineAt(gl, i)
			if i >= len(wl) || i >= len(gl) || w != g {
				return "line " + itoa(i+1) + ":\n- " + clip(w) + "\n+ " + clip(g)
			}
		}
		return "equal"
	}
	n := min(len(want), len(got))
	for i := range n {
		if want[i] != got[i] {
			return "byte " + itoa(i) + ": want 0x" + hex2(want[i]) + ", got 0x" + hex2(got[i])
		}
	}
	if len(want) != len(got) {
		return "sizes " + itoa(len(want)) + " and " + itoa(len(got)) + " (equal up to byte " + itoa(n) + ")"
	}
	return "equal"
}

// isText: no NUL byte and valid UTF-8 (random binary data, such as a disk
// image, almost never is).
func isText(b []byte) bool { return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b) }

func lineAt(ls []string, i int) string {
	if i < len(ls) {
		return ls[i]
	}
	return "(end of file)"
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func itoa(i int) string { return strconv.Itoa(i) }

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// ReadFile returns the content of the file at path, failing the test when it
// cannot be read.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NeedTool returns the path of an external program a test needs (promtool,
// chromium, unshare...). Without it the test is skipped, naming the Debian
// package to install; in CI (the CI environment variable set, as .ci/run
// does) it fails instead, so CI never skips a test silently.
func NeedTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, name+" not installed (Debian package "+debianPackage+")")
	}
	return p
}

// SkipOrFail skips the test with why, or fails it in CI (CI set).
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s, and CI is set: .ci/run installs what the tests need", why)
	}
	t.Skip(why)
}
