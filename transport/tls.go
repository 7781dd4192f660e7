package transport

import (
	"crypto/tls"
	"log/slog"

	"github.com/aimwan/aimwan/transport/identity"
)

// ALPN is the TLS application protocol of the WAN protocol between proxies; it
// names the protocol version. A peer offering another one is refused.
const ALPN = "aimwan/4"

// Refusals of the pin check (see package transport/identity).
var (
	ErrUnknownPeer  = identity.ErrUnknownPeer
	ErrCertValidity = identity.ErrCertValidity
	ErrWrongALPN    = identity.ErrWrongALPN
)

// Pins is the set of peer fingerprints a node trusts.
type Pins = identity.Pins

// wan is the mutual TLS of the WAN link.
func wan(id *Identity, pins Pins, log *slog.Logger) identity.Pinned {
	return identity.Pinned{Identity: id, Pins: pins, ALPN: ALPN, Leg: "WAN", Logger: orDefault(log)}
}

// ServerTLS returns the TLS configuration of the accepting side: it requires a
// client certificate whose fingerprint is pinned and the ALPN of this
// version. Refusals are logged with the remote address.
func ServerTLS(id *Identity, pins Pins, log *slog.Logger) *tls.Config {
	return wan(id, pins, log).ServerConfig()
}

// ClientTLS returns the TLS configuration of the dialling side: it presents
// the identity and accepts only a server whose fingerprint is pinned.
// Verification of the chain is replaced by the pin check, as in Syncthing.
func ClientTLS(id *Identity, pins Pins, remote string, log *slog.Logger) *tls.Config {
	return wan(id, pins, log).ClientConfig(remote)
}

func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
