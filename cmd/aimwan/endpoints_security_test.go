package main

import (
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
