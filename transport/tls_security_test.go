package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// identityWith makes an identity whose certificate is valid from notBefore
// to notAfter, self-signed with key (a new key when nil).
func identityWith(t *testing.T, key *ecdsa.PrivateKey, notBefore, notAfter time.Time) *Identity {
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "aimwan"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, DNSNames: []string{"aimwan"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Cert: cert, Fingerprint: FingerprintOf(der)}
}

// dialRefused reports whether a client with cliID, pinning srvPin, fails to
// get a working connection to a listener with srvID pinning cliPin.
func dialRefused(t *testing.T, srvID, cliID *Identity, srvPins, cliPins Pins) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	log, _ := newLogger()
	ln, err := Listen("127.0.0.1:0", srvID, srvPins, fastCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *quic.Conn, 1)
	go func() {
		if c, err := ln.Accept(ctx); err == nil {
			accepted <- c
		}
	}()
	c, err := Dial(ctx, ln.Addr().String(), cliID, cliPins, fastCfg, log)
	if err != nil {
		return true
	}
	defer c.CloseWithError(0, "")
	select {
	case sc := <-accepted:
		sc.CloseWithError(0, "")
		return false
	case <-c.Context().Done():
		return true
	case <-ctx.Done(): // neither within 10s: refused only if the connection is gone
		return c.Context().Err() != nil
	}
}

// TestSelfSignedUnpinnedRefused: a certificate made with the pinned peer's
// own key, but not the pinned certificate, is refused both ways (pins name
// certificates, not keys or subjects).
func TestSelfSignedUnpinnedRefused(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pinned := identityWith(t, key, now.Add(-time.Hour), now.AddDate(1, 0, 0))
	reissued := identityWith(t, key, now.Add(-time.Hour), now.AddDate(2, 0, 0))
	srv := mustIdentity(t)
	if !dialRefused(t, srv, reissued, Pins{pinned.Fingerprint}, Pins{srv.Fingerprint}) {
		t.Error("server accepted a client certificate that is not the pinned one (same key)")
	}
	if !dialRefused(t, reissued, srv, Pins{srv.Fingerprint}, Pins{pinned.Fingerprint}) {
		t.Error("client accepted a server certificate that is not the pinned one (same key)")
	}
	if dialRefused(t, pinned, srv, Pins{srv.Fingerprint}, Pins{pinned.Fingerprint}) {
		t.Error("the pinned certificate itself was refused")
	}
}

// TestExpiredPinnedRefused: a pinned certificate past its NotAfter (or not
// yet valid) is refused, on either side.
func TestExpiredPinnedRefused(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name     string
		from, to time.Time
	}{
		{"expired", now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)},
		{"not yet valid", now.AddDate(1, 0, 0), now.AddDate(2, 0, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad, good := identityWith(t, nil, tt.from, tt.to), mustIdentity(t)
			if !dialRefused(t, good, bad, Pins{bad.Fingerprint}, Pins{good.Fingerprint}) {
				t.Error("server accepted a pinned client certificate outside its validity")
			}
			if !dialRefused(t, bad, good, Pins{good.Fingerprint}, Pins{bad.Fingerprint}) {
				t.Error("client accepted a pinned server certificate outside its validity")
			}
		})
	}
}

// TestNoClientCertificateRefused: a client that presents no certificate at
// all is refused (by TLS itself: RequireAnyClientCert, before the pin check,
// so no "refused WAN peer" line is logged for it).
func TestNoClientCertificateRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv, cli := mustIdentity(t), mustIdentity(t)
	log, _ := newLogger()
	ln, err := Listen("127.0.0.1:0", srv, Pins{cli.Fingerprint}, fastCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(ctx); err == nil {
			t.Error("server accepted a client without a certificate")
			c.CloseWithError(0, "")
		}
	}()
	tc := ClientTLS(cli, Pins{srv.Fingerprint}, "test", nil)
	tc.Certificates = nil
	c, err := quic.DialAddr(ctx, ln.Addr().String(), tc, fastCfg.QUIC())
	refusedConn(ctx, t, c, err)
}
