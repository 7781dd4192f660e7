package main

import (
	"context"
	"testing"
)

// TestSimChaosFlags: bad flags and settings are usage errors (exit 2),
// found before anything runs.
func TestSimChaosFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"seed not a number", []string{"--seed", "x"}},
		{"negative rounds", []string{"--rounds", "-1", "--bin", "/bin/true"}},
		{"volume size not a size", []string{"--volume-size", "big"}},
		{"volume size too small", []string{"--volume-size", "4KiB", "--bin", "/bin/true"}},
		{"unknown fault kind", []string{"--kinds", "meteor", "--bin", "/bin/true"}},
		{"bad link", []string{"--link", "sometimes", "--bin", "/bin/true"}},
		{"extra argument", []string{"now"}},
		{"unknown flag", []string{"--fast"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := runSimChaos(context.Background(), tt.args)
			if code := exitCode(err); code != exitUsage {
				t.Fatalf("runSimChaos(%q) = %v (exit %d), want a usage error", tt.args, err, code)
			}
		})
	}
}
