package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// ALPN is the TLS application protocol of the WAN protocol between proxies; it
// names the protocol version. A peer offering another one is refused.
const ALPN = "aimwan/3"

// ErrUnknownPeer is returned (and logged) when a peer presents a certificate
// whose fingerprint is not pinned.
var ErrUnknownPeer = errors.New("unknown peer fingerprint")

// ErrCertValidity is returned (and logged) when a pinned peer's certificate
// is expired or not yet valid.
var ErrCertValidity = errors.New("certificate outside its validity period")

// ErrWrongALPN is returned (and logged) when a client offers no ALPN this
// node speaks.
var ErrWrongALPN = errors.New("unsupported protocol version (ALPN)")

// Pins is the set of peer fingerprints a node trusts.
type Pins []Fingerprint

func (p Pins) has(f Fingerprint) bool { return slices.Contains(p, f) }

// verifier checks the peer's certificate against the pins. remote names the
// peer in log lines.
func verifier(pins Pins, log *slog.Logger, remote string) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			log.Warn("refused WAN peer: no certificate presented", "remote", remote)
			return fmt.Errorf("peer %s: no certificate: %w", remote, ErrUnknownPeer)
		}
		fp := FingerprintOf(raw[0])
		if !pins.has(fp) {
			log.Warn("refused WAN peer: unknown fingerprint (add it with --peer-fp to trust it)",
				"remote", remote, "fingerprint", fp.String())
			return fmt.Errorf("peer %s fingerprint %s: %w", remote, fp, ErrUnknownPeer)
		}
		cert, err := x509.ParseCertificate(raw[0])
		if err != nil {
			log.Warn("refused WAN peer: malformed certificate", "remote", remote, "err", err)
			return fmt.Errorf("peer %s: %w", remote, err)
		}
		// A pin says whose key it is, not that it is still valid: an expired
		// (or not yet valid) certificate is refused like an unknown one.
		if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			log.Warn("refused WAN peer: pinned certificate outside its validity (make a new one with aimwan keygen)",
				"remote", remote, "fingerprint", fp.String(), "not_before", cert.NotBefore, "not_after", cert.NotAfter)
			return fmt.Errorf("peer %s certificate valid %s to %s: %w", remote,
				cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), ErrCertValidity)
		}
		return nil
	}
}

// ServerTLS returns the TLS configuration of the accepting side: it requires a
// client certificate whose fingerprint is pinned and the ALPN of this
// version. Refusals are logged with the remote address.
func ServerTLS(id *Identity, pins Pins, log *slog.Logger) *tls.Config {
	log = orDefault(log)
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{ALPN},
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := "?"
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		if !slices.Contains(hello.SupportedProtos, ALPN) {
			log.Warn("refused WAN peer: wrong protocol version", "remote", remote,
				"offered_alpn", hello.SupportedProtos, "want_alpn", ALPN)
			return nil, fmt.Errorf("peer %s offered ALPN %q: %w", remote, hello.SupportedProtos, ErrWrongALPN)
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.VerifyPeerCertificate = verifier(pins, log, remote)
		return c, nil
	}
	return base
}

// ClientTLS returns the TLS configuration of the dialling side: it presents
// the identity and accepts only a server whose fingerprint is pinned.
// Verification of the chain is replaced by the pin check, as in Syncthing.
func ClientTLS(id *Identity, pins Pins, remote string, log *slog.Logger) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{id.Cert},
		InsecureSkipVerify:    true, // the pin check below replaces chain verification
		VerifyPeerCertificate: verifier(pins, orDefault(log), remote),
		NextProtos:            []string{ALPN},
		ServerName:            "aimwan",
	}
}

func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
