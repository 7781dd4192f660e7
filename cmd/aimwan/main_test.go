package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/internal/version"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"help", errHelpShown, exitOK},
		{"usage", usagef("bad flag"), exitUsage},
		{"wrapped usage", fmt.Errorf("src: %w", usagef("bad flag")), exitUsage},
		{"canceled", fmt.Errorf("serve: %w", context.Canceled), exitCanceled},
		{"failure", errors.New("disk on fire"), exitFailure},
		{"silent", silentFailure, exitFailure},
		{"usage wrapping", usagef("--rate: %w", errSentinelForTest), exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

var errSentinelForTest = errors.New("sentinel")

func TestUsagefWraps(t *testing.T) {
	err := usagef("src: --volume: %w", errSentinelForTest)
	if !errors.Is(err, errSentinelForTest) || err.Error() != "src: --volume: sentinel" {
		t.Fatalf("usagef = %q; errors.Is(sentinel) = %v", err, errors.Is(err, errSentinelForTest))
	}
}

func TestRunDispatch(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out); err != nil {
		t.Fatalf("help: %v", err)
	}
	if !strings.Contains(out.String(), "Commands:") {
		t.Fatalf("help output lacks the command list:\n%s", out.String())
	}
	err := run(context.Background(), []string{"no-such-command"}, &out)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "no-such-command") {
		t.Fatalf("unknown command: err = %v", err)
	}
	if err := run(context.Background(), nil, &out); exitCode(err) != exitUsage {
		t.Fatalf("no command: err = %v", err)
	}
}

func TestLoadYAML(t *testing.T) {
	type cfg struct {
		Buffer string `yaml:"buffer"`
		Rate   string `yaml:"rate"`
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("buffer: /srv/buf\nrate: 2mbit\n"), 0o600)
	var c cfg
	if err := loadYAML(good, &c); err != nil || c.Buffer != "/srv/buf" || c.Rate != "2mbit" {
		t.Fatalf("loadYAML good = %+v, %v", c, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("bufer: /srv/buf\n"), 0o600)
	if err := loadYAML(bad, &c); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "bufer") {
		t.Fatalf("unknown key: err = %v, want a usage error naming the key", err)
	}
	if err := loadYAML(filepath.Join(dir, "missing.yaml"), &c); exitCode(err) != exitUsage {
		t.Fatalf("missing file: err = %v", err)
	}
	if err := loadYAML("", &c); err != nil {
		t.Fatalf("empty path: %v", err)
	}
}

// TestVersion: `aimwan --version` and `aimwan version` print one line naming
// the version, the revision and the Go version; extra arguments are a usage
// error.
func TestVersion(t *testing.T) {
	in := version.Get()
	for _, arg := range []string{"--version", "-version", "version"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		line := strings.TrimSpace(out.String())
		if strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "aimwan "+in.Version+" ") ||
			!strings.Contains(line, in.Revision) || !strings.Contains(line, in.GoVersion) {
			t.Errorf("%s printed %q, want one line with %+v", arg, line, in)
		}
	}
	if err := run(context.Background(), []string{"version", "extra"}, &bytes.Buffer{}); exitCode(err) != exitUsage {
		t.Errorf("version extra: err = %v, want a usage error", err)
	}
}
