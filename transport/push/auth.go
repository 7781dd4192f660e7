package push

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/aimwan/aimwan/transport/identity"
)

// ALPN is the TLS application protocol of the push protocol. The protocol
// version is agreed in HELLO (ErrVersion names a mismatch); the ALPN only
// keeps a push peer from being taken for another TLS service, or the WAN
// protocol's.
const ALPN = "aimwan-push"

// Auth is the mutual TLS of a push leg, on both sides: this node's identity
// and the peers it trusts. There is no plaintext mode: a Server or a dial
// without an identity and at least one pin is refused before any byte moves.
type Auth struct {
	// Identity is this node's key pair (aimwan keygen; --key DIR).
	Identity *identity.Identity
	// Peers are the fingerprints of the nodes trusted on this leg
	// (--peer-fp; a proxy's --lan-peer-fp).
	Peers identity.Pins
	// Refusals counts refused peers by fingerprint (the metric
	// aimwan_push_refused_peers_total) and paces their log lines; nil:
	// refusals are only logged.
	Refusals *identity.Refusals
}

func (a Auth) pinned(log *slog.Logger) identity.Pinned {
	return identity.Pinned{Identity: a.Identity, Pins: a.Peers, ALPN: ALPN, Leg: "push", Logger: log, Refusals: a.Refusals}
}

func (a Auth) validate() error {
	if err := a.pinned(nil).Validate(); err != nil {
		return fmt.Errorf("mutual TLS: %w", err)
	}
	return nil
}

// serverTLS runs the server side of the TLS handshake on nc (the deadline
// is the caller's) and returns the connection and the client's fingerprint.
// A client that is not TLS, presents no certificate or is not pinned is
// refused here, before any push frame is read.
func serverTLS(ctx context.Context, nc net.Conn, cfg *tls.Config, a Auth, log *slog.Logger) (*tls.Conn, identity.Fingerprint, error) {
	tc := tls.Server(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		err = explainTLS(err)
		if errors.Is(err, io.EOF) { // closed before sending a byte: a port probe, not a peer
			return nil, identity.Fingerprint{}, fmt.Errorf("closed before the TLS handshake: %w", err)
		}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("no TLS handshake within the handshake timeout (a silent connection): %w", err)
		}
		if !identity.IsRefusal(err) { // the pin check has logged and counted the others
			if suppressed, ok := a.Refusals.Count(""); ok {
				log.Warn("refused push peer: TLS handshake failed", "remote", nc.RemoteAddr().String(),
					"err", err, "refusals_not_logged", suppressed)
			}
		}
		return nil, identity.Fingerprint{}, fmt.Errorf("TLS handshake: %w", err)
	}
	fp, _ := identity.PeerOf(tc.ConnectionState())
	return tc, fp, nil
}

// clientTLS runs the client side of the TLS handshake on nc.
func clientTLS(ctx context.Context, nc net.Conn, addr string, a Auth, log *slog.Logger) (*tls.Conn, error) {
	tc := tls.Client(nc, a.pinned(log).ClientConfig(addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		err = explainTLS(err)
		if identity.IsRefusal(err) {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		return nil, fmt.Errorf("%w: TLS handshake: %w", ErrUnavailable, err)
	}
	return tc, nil
}

// errNotTLS marks a peer that does not speak TLS.
var errNotTLS = errors.New("peer does not speak TLS (an aimwan node without --key, or another service?)")

// explainTLS adds what a bare TLS error means for a push peer.
func explainTLS(err error) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return fmt.Errorf("%w: %w", errNotTLS, err)
	}
	return err
}
