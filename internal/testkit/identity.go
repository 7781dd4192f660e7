package testkit

import (
	"sync"

	"github.com/aimwan/aimwan/transport/identity"
)

var (
	idsOnce sync.Once
	ids     [3]*identity.Identity
)

// Identities returns three node identities made once per test binary (key
// generation is the slow part), in memory: a server and a client, which
// tests pin to each other, and a stranger nobody pins.
func Identities() (server, client, stranger *identity.Identity) {
	idsOnce.Do(func() {
		for i := range ids {
			id, err := identity.New()
			if err != nil {
				panic("testkit: make identity: " + err.Error())
			}
			ids[i] = id
		}
	})
	return ids[0], ids[1], ids[2]
}

// Pins returns the fingerprints of ids.
func Pins(ids ...*identity.Identity) identity.Pins {
	var p identity.Pins
	for _, id := range ids {
		p = append(p, id.Fingerprint)
	}
	return p
}
