package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/transport"
)

func TestKeygenPrintsFingerprintLast(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "key")
	for range 2 { // the second run keeps the identity and prints the same
		var out bytes.Buffer
		if err := runKeygen([]string{"--dir", dir}, &out); err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(out.String())
		fp, err := transport.ParseFingerprint(f[len(f)-1])
		if err != nil {
			t.Fatalf("last word of %q: %v", out.String(), err)
		}
		id, err := transport.LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fp != id.Fingerprint {
			t.Fatalf("printed %s, identity has %s", fp, id.Fingerprint)
		}
	}
	var ue *usageError
	if err := runKeygen(nil, &bytes.Buffer{}); !errors.As(err, &ue) {
		t.Errorf("keygen without --dir: %v, want a usage error", err)
	}
}

func TestProxyFlagsOverrideYAML(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "proxy.yaml")
	yaml := "mode: passthrough\nwan_peer: 10.0.0.1:7820\npeer_fp: [AAAA]\nconns: 2\nmax_wan_conns: 8\nmax_conns: 30\nschedule: \"mon 08:00-09:00 1mbit\"\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := proxyFlags([]string{"--config", cfg, "--mode", "optimize", "--peer-fp", "BBBB,CCCC", "--conns", "3", "--max-wan-conns", "12"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Mode != "optimize" || f.WANPeer != "10.0.0.1:7820" || f.Conns != 3 || f.MaxWANConns != 12 || f.MaxConns != 30 || len(f.PeerFP) != 2 || f.PeerFP[0] != "BBBB" {
		t.Errorf("merged config %+v", f)
	}
}

func TestProxyRoleAndSettingErrors(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := runKeygen([]string{"--dir", key}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	id, err := transport.LoadIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	fp := id.Fingerprint.String()
	lan := "--lan-peer-fp=" + fp
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no role", []string{"--key", key, "--peer-fp", fp, lan}, "choose a role"},
		{"both roles", []string{"--wan-peer", "a:1", "--lan-forward", "b:2", "--key", key, "--peer-fp", fp, lan}, "not both"},
		{"no key", []string{"--wan-peer", "a:1", "--peer-fp", fp, lan}, "--key"},
		{"no pin", []string{"--wan-peer", "a:1", "--key", key, lan}, "--peer-fp"},
		{"no LAN pin", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp}, "--lan-peer-fp"},
		{"bad pin", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", "nope", lan}, "fingerprint"},
		{"bad LAN pin", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp, "--lan-peer-fp", "nope"}, "--lan-peer-fp"},
		{"bad mode", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp, lan, "--mode", "turbo"}, "mode"},
		{"bad schedule", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp, lan, "--schedule", "mon 8-9 1mbit"}, "schedule line 1"},
		{"bad rate", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp, lan, "--link-rate", "fast"}, "--link-rate"},
		{"negative WAN conns", []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp, lan, "--max-wan-conns", "-1"}, "--max-wan-conns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runProxy(context.Background(), tc.args)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}
}
