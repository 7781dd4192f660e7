package push

import (
	"crypto/tls"
	"sync"

	"github.com/aimwan/aimwan/transport/identity"
)

// The identities of the tests, made once per test binary (key generation is
// the slow part): the server, a client both pin, and a stranger nobody pins.
var (
	idsOnce                        sync.Once
	serverID, clientID, strangerID *identity.Identity
)

func testIDs() {
	idsOnce.Do(func() {
		for _, p := range []**identity.Identity{&serverID, &clientID, &strangerID} {
			id, err := identity.New()
			if err != nil {
				panic(err)
			}
			*p = id
		}
	})
}

// serverAuth is a test server's auth: it trusts clientID.
func serverAuth() Auth {
	testIDs()
	return Auth{Identity: serverID, Peers: identity.Pins{clientID.Fingerprint}}
}

// clientAuth is a test client's auth: it is clientID and trusts serverID.
func clientAuth() Auth {
	testIDs()
	return Auth{Identity: clientID, Peers: identity.Pins{serverID.Fingerprint}}
}

// clientTLSConfig is clientAuth as a TLS configuration, for peers that
// speak frames by hand.
func clientTLSConfig() *tls.Config { return clientAuth().pinned(nil).ClientConfig("test") }

// serverTLSConfig is serverAuth as a TLS configuration, for servers that
// speak frames by hand.
func serverTLSConfig() *tls.Config { return serverAuth().pinned(nil).ServerConfig() }
