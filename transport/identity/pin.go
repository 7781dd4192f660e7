package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

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

// Has reports whether f is pinned.
func (p Pins) Has(f Fingerprint) bool { return slices.Contains(p, f) }

// ParsePins parses fingerprints as flags and YAML give them: each value may
// hold several, separated by commas. what names the setting in errors
// ("--peer-fp").
func ParsePins(what string, values []string) (Pins, error) {
	var pins Pins
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			fp, err := ParseFingerprint(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			if !pins.Has(fp) {
				pins = append(pins, fp)
			}
		}
	}
	return pins, nil
}

// Pinned is the mutual TLS of one kind of link (the WAN between proxies, a
// LAN push leg): this node's identity, the peers it trusts, the application
// protocol, and where refusals are reported. Both sides present their
// certificate; a peer is trusted exactly when its fingerprint is pinned and
// its certificate is within its validity dates. No CA is involved.
type Pinned struct {
	Identity *Identity // this node's key pair (required)
	Pins     Pins      // the peers trusted (required: at least one)
	ALPN     string    // application protocol and version; a peer offering another is refused (required)
	// Leg names the link in log lines ("WAN", "push"): "refused push peer".
	Leg string
	// Logger receives refusals (nil: slog.Default()).
	Logger *slog.Logger
	// Refusals counts refused peers by fingerprint and paces their log
	// lines (nil: every refusal is logged, nothing is counted).
	Refusals *Refusals
}

// Validate reports what is missing.
func (p Pinned) Validate() error {
	switch {
	case p.Identity == nil:
		return errors.New("no identity (make one with aimwan keygen --dir DIR and give it with --key DIR)")
	case len(p.Pins) == 0:
		return errors.New("no pinned peer fingerprint (--peer-fp FP: the fingerprint aimwan keygen printed for the peer)")
	case p.ALPN == "":
		return errors.New("no ALPN")
	}
	return nil
}

func (p Pinned) log() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// refuse logs and counts one refused peer; fp is "" when the peer presented
// no usable certificate.
func (p Pinned) refuse(msg, remote, fp string, attrs ...any) {
	suppressed, ok := p.Refusals.record(fp)
	if !ok {
		return
	}
	args := append([]any{"remote", remote}, attrs...)
	if fp != "" {
		args = append(args, "fingerprint", fp)
	}
	if suppressed > 0 {
		args = append(args, "refusals_not_logged", suppressed)
	}
	p.log().Warn(fmt.Sprintf("refused %s peer: %s", p.Leg, msg), args...)
}

// verifier checks the peer's certificate against the pins. remote names the
// peer in log lines.
func (p Pinned) verifier(remote string) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			p.refuse("no certificate presented", remote, "")
			return fmt.Errorf("peer %s: no certificate: %w", remote, ErrUnknownPeer)
		}
		fp := FingerprintOf(raw[0])
		if !p.Pins.Has(fp) {
			p.refuse("unknown fingerprint (pin it with --peer-fp to trust it)", remote, fp.String())
			return fmt.Errorf("peer %s fingerprint %s: %w", remote, fp, ErrUnknownPeer)
		}
		cert, err := x509.ParseCertificate(raw[0])
		if err != nil {
			p.refuse("malformed certificate", remote, fp.String(), "err", err)
			return fmt.Errorf("peer %s: %w", remote, err)
		}
		// A pin says whose key it is, not that it is still valid: an expired
		// (or not yet valid) certificate is refused like an unknown one.
		if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			p.refuse("pinned certificate outside its validity (make a new one with aimwan keygen)", remote, fp.String(),
				"not_before", cert.NotBefore, "not_after", cert.NotAfter)
			return fmt.Errorf("peer %s certificate valid %s to %s: %w", remote,
				cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), ErrCertValidity)
		}
		return nil
	}
}

// ServerConfig returns the TLS configuration of the accepting side: TLS 1.3,
// a client certificate whose fingerprint is pinned, and the ALPN. Refusals
// are logged with the remote address (and counted, see Refusals).
func (p Pinned) ServerConfig() *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.Identity.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{p.ALPN},
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := "?"
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		if !slices.Contains(hello.SupportedProtos, p.ALPN) {
			p.refuse("wrong protocol version", remote, "", "offered_alpn", hello.SupportedProtos, "want_alpn", p.ALPN)
			return nil, fmt.Errorf("peer %s offered ALPN %q: %w", remote, hello.SupportedProtos, ErrWrongALPN)
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.VerifyPeerCertificate = p.verifier(remote)
		return c, nil
	}
	return base
}

// ClientConfig returns the TLS configuration of the dialing side: it
// presents the identity and accepts only a server whose fingerprint is
// pinned. Verification of the chain is replaced by the pin check, as in
// Syncthing. remote names the server in log lines.
func (p Pinned) ClientConfig(remote string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{p.Identity.Cert},
		InsecureSkipVerify:    true, // the pin check below replaces chain verification
		VerifyPeerCertificate: p.verifier(remote),
		NextProtos:            []string{p.ALPN},
		ServerName:            "aimwan",
	}
}

// PeerOf returns the fingerprint of the certificate a peer presented on a
// completed handshake (false when it presented none).
func PeerOf(st tls.ConnectionState) (Fingerprint, bool) {
	if len(st.PeerCertificates) == 0 {
		return Fingerprint{}, false
	}
	return FingerprintOf(st.PeerCertificates[0].Raw), true
}

// IsRefusal reports whether err is a pin check's refusal (unknown
// fingerprint, certificate outside its validity, wrong ALPN), as opposed to
// a handshake that failed on its own (not TLS, timed out, cut).
func IsRefusal(err error) bool {
	return errors.Is(err, ErrUnknownPeer) || errors.Is(err, ErrCertValidity) || errors.Is(err, ErrWrongALPN)
}
