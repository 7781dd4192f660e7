package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/netaddr"
	"github.com/aimwan/aimwan/proxy"
)

// TestDefaultEndpointsLoopback: every control, metrics, NBD and LAN push
// endpoint listens on loopback unless configured otherwise. The WAN listen
// of the destination edge is the only wide default: it is authenticated
// (mTLS with pinned fingerprints).
func TestDefaultEndpointsLoopback(t *testing.T) {
	for name, addr := range map[string]string{
		"src nbd":            aimsrc.DefaultNBDAddr,
		"src control":        aimsrc.DefaultControlAddr,
		"src metrics":        aimsrc.DefaultMetricsAddr,
		"src push target":    aimsrc.DefaultPushAddr,
		"dst listen":         dstDefaultListen,
		"dst control":        dstDefaultControl,
		"dst metrics":        dstDefaultMetrics,
		"proxy lan listen":   proxy.DefaultLANListen,
		"proxy src metrics":  proxy.DefaultSourceMetrics,
		"proxy dest metrics": proxy.DefaultDestMetrics,
		"proxy lan forward":  proxy.DefaultLANForward,
	} {
		if !netaddr.IsLoopback(addr) {
			t.Errorf("%s default %q is not loopback", name, addr)
		}
	}
	if proxy.DefaultLANForward != dstDefaultListen {
		t.Errorf("the destination edge forwards to %s by default, but dst listens on %s", proxy.DefaultLANForward, dstDefaultListen)
	}
	if netaddr.IsLoopback(proxy.DefaultWANListen) {
		t.Logf("note: the WAN listen default %q is loopback", proxy.DefaultWANListen)
	}
}

// TestKeygenFileModes: `aimwan keygen` writes the key and the certificate
// readable by the owner only, and a second run keeps (never overwrites)
// them.
func TestKeygenFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "id")
	var out strings.Builder
	if err := runKeygen([]string{"--dir", dir}, &out); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("keygen wrote nothing")
	}
	before := map[string][]byte{}
	for _, e := range entries {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: group/other may read it", e.Name(), st.Mode().Perm())
		}
		before[e.Name()], _ = os.ReadFile(filepath.Join(dir, e.Name()))
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o022 != 0 {
		t.Errorf("identity folder has mode %v: others may write it", st.Mode().Perm())
	}
	fp := strings.Fields(out.String())
	out.Reset()
	if err := runKeygen([]string{"--dir", dir}, &out); err != nil {
		t.Fatal(err)
	}
	again := strings.Fields(out.String())
	if fp[len(fp)-1] != again[len(again)-1] {
		t.Errorf("second keygen changed the fingerprint: %s -> %s", fp[len(fp)-1], again[len(again)-1])
	}
	for name, b := range before {
		now, _ := os.ReadFile(filepath.Join(dir, name))
		if string(now) != string(b) {
			t.Errorf("second keygen rewrote %s", name)
		}
	}
}

// TestDaemonsRefuseOpenKey: a daemon whose key file group or others may
// read does not start, and says how to fix it; one without --key names
// aimwan keygen.
func TestDaemonsRefuseOpenKey(t *testing.T) {
	key, fp := testKey(t)
	if err := os.Chmod(filepath.Join(key, "key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, run := range map[string]func() error{
		"src": func() error {
			_, err := srcConfig([]string{"--buffer", dir, "--volume", "v=" + filepath.Join(dir, "v.img"), "--key", key, "--peer-fp", fp})
			return err
		},
		"dst": func() error {
			f, err := dstFlags([]string{"--buffer", dir, "--volume", "v=/v.img", "--key", key, "--peer-fp", fp})
			if err == nil {
				_, err = dstConfig(f, nil, nil)
			}
			return err
		},
		"proxy": func() error {
			return runProxy(context.Background(), []string{"--wan-peer", "a:1", "--key", key, "--peer-fp", fp, "--lan-peer-fp", fp})
		},
	} {
		err := run()
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "chmod 600 "+filepath.Join(key, "key.pem")) {
			t.Errorf("%s with a world-readable key: %v, want a usage error naming chmod 600", name, err)
		}
	}
	_, err := srcConfig([]string{"--buffer", dir, "--volume", "v=" + filepath.Join(dir, "v.img"), "--peer-fp", fp})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "aimwan keygen") {
		t.Errorf("src without --key: %v, want a usage error naming aimwan keygen", err)
	}
}
