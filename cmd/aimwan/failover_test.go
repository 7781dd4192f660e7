package main

import (
	"bytes"
	"context"
	"testing"
)

// TestFailoverUsage: the failover commands refuse missing or contradictory
// flags with a usage error (exit 2) before contacting any node.
func TestFailoverUsage(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	cases := []struct {
		name string
		run  func() error
	}{
		{"promote without target", func() error { return runDstPromote(ctx, []string{"--buffer", "/b"}, &out) }},
		{"promote with both targets", func() error {
			return runDstPromote(ctx, []string{"--buffer", "/b", "--volume", "v", "--group", "g"}, &out)
		}},
		{"promote without token", func() error { return runDstPromote(ctx, []string{"--volume", "v"}, &out) }},
		{"promote stray argument", func() error { return runDstPromote(ctx, []string{"--buffer", "/b", "--volume", "v", "x"}, &out) }},
		{"demote without volume", func() error { return runDstDemote(ctx, []string{"--buffer", "/b"}, &out) }},
		{"drain without volume", func() error { return runSrcDrain(ctx, []string{"--buffer", "/b"}, &out) }},
		{"drain without token", func() error { return runSrcDrain(ctx, []string{"--volume", "v"}, &out) }},
		{"failover without volume", func() error { return runFailover(ctx, []string{"--src-buffer", "/a", "--dst-buffer", "/b"}) }},
		{"failover without dst token", func() error { return runFailover(ctx, []string{"--volume", "v", "--src-buffer", "/a"}) }},
		{"test clone without snapshot", func() error {
			return runDstTestClone(ctx, []string{"--volume", "v", "--snapshots", "/s"}, &out)
		}},
		{"test clone without folder", func() error {
			return runDstTestClone(ctx, []string{"--volume", "v", "--snapshot", "s"}, &out)
		}},
		{"test clone bad flag", func() error { return runDstTestClone(ctx, []string{"--volum", "v"}, &out) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); exitCode(err) != exitUsage {
				t.Fatalf("err = %v, want a usage error", err)
			}
		})
	}
}
