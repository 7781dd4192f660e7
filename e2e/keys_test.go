package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit/procs"
	"github.com/aimwan/aimwan/transport/identity"
	"github.com/aimwan/aimwan/transport/push"
)

// Key is a node identity made with `aimwan keygen`: its folder (--key) and
// fingerprint (what peers pin).
type Key struct {
	Dir, FP string
}

// Keys are the identities of the suite's daemons, made once by TestMain:
// every leg is mutual TLS with pinned fingerprints, as an operator runs it.
// Rogue is pinned by nobody.
var Keys struct {
	Src, Dst, ProxySrc, ProxyDst, Rogue Key
}

// makeKeys runs aimwan keygen for each identity below dir.
func makeKeys(dir string) error {
	for name, k := range map[string]*Key{"src": &Keys.Src, "dst": &Keys.Dst, "proxy-src": &Keys.ProxySrc,
		"proxy-dst": &Keys.ProxyDst, "rogue": &Keys.Rogue} {
		k.Dir = filepath.Join(dir, "key-"+name)
		fp, err := procs.Keygen(context.Background(), aimwanBin, k.Dir)
		if err != nil {
			return fmt.Errorf("keygen %s: %w", name, err)
		}
		k.FP = fp
	}
	return nil
}

// Auth loads k for a push client or server in the test process that trusts
// peers.
func (k Key) Auth(t *testing.T, peers ...Key) push.Auth {
	t.Helper()
	id, err := identity.Load(k.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var pins []string
	for _, p := range peers {
		pins = append(pins, p.FP)
	}
	ps, err := identity.ParsePins("pins", pins)
	if err != nil {
		t.Fatal(err)
	}
	return push.Auth{Identity: id, Peers: ps}
}
