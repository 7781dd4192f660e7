package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// File names of an identity inside its directory.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// ErrNoIdentity is returned by Load when the directory holds no identity.
var ErrNoIdentity = errors.New("no identity")

// ErrKeyMode is returned by Load when the private key file may be
// read by the file's group or by others: a key anyone on the host can copy
// is no identity.
var ErrKeyMode = errors.New("private key readable by group or others")

// Fingerprint is the SHA-256 of a certificate's DER encoding.
type Fingerprint [32]byte

var fpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String renders the fingerprint as 52 base32 characters in dash-separated
// groups of four, e.g. "ABCD-EFGH-...". It contains no spaces.
func (f Fingerprint) String() string {
	s := fpEncoding.EncodeToString(f[:])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// ParseFingerprint accepts the form String prints (dashes and case are
// ignored) and also 64 hexadecimal digits (colons allowed).
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	clean := strings.ToUpper(strings.NewReplacer("-", "", ":", "", " ", "").Replace(strings.TrimSpace(s)))
	switch len(clean) {
	case 52:
		b, err := fpEncoding.DecodeString(clean)
		if err != nil {
			return f, fmt.Errorf("fingerprint %q: not base32: %w", s, err)
		}
		copy(f[:], b)
		return f, nil
	case 64:
		b, err := hex.DecodeString(clean)
		if err != nil {
			return f, fmt.Errorf("fingerprint %q: not hex: %w", s, err)
		}
		copy(f[:], b)
		return f, nil
	}
	return f, fmt.Errorf("fingerprint %q: want 52 base32 characters (as printed by aimwan keygen) or 64 hex digits", s)
}

// FingerprintOf returns the fingerprint of a DER-encoded certificate.
func FingerprintOf(certDER []byte) Fingerprint { return sha256.Sum256(certDER) }

// Identity is a node's TLS certificate with its private key.
type Identity struct {
	Cert        tls.Certificate
	Fingerprint Fingerprint
}

// Generate creates a new ECDSA P-256 key and a self-signed
// certificate in dir (created if needed), both files mode 0600. It refuses to
// overwrite an existing identity. The certificate is written last, durably:
// it is what makes the identity exist, so a key left without one by an
// interrupted run (never used: it has no fingerprint) is replaced.
func Generate(dir string) (*Identity, error) {
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create identity dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CertFile)); err == nil {
		return nil, fmt.Errorf("identity in %s: %s exists: %w", dir, CertFile, fs.ErrExist)
	}
	certPEM, keyPEM, err := newSelfSigned()
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("identity in %s: %w", dir, err)
	}
	if err := durable.WriteFile(filepath.Join(dir, CertFile), certPEM, 0o600); err != nil {
		return nil, fmt.Errorf("identity in %s: %w", dir, err)
	}
	return parseIdentity(dir, certPEM, keyPEM)
}

// Load reads the identity stored in dir. A missing directory or
// missing files give an error wrapping ErrNoIdentity.
func Load(dir string) (*Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load identity from %s (run aimwan keygen --dir %s): %w", dir, dir, ErrNoIdentity)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	st, err := os.Stat(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load identity from %s: %s missing: %w", dir, KeyFile, ErrNoIdentity)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load identity: %s has mode %04o (run chmod 600 %s): %w", keyPath, perm, keyPath, ErrKeyMode)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return parseIdentity(dir, certPEM, keyPEM)
}

// New makes an identity in memory only, never written anywhere: for tests
// and tools that need a throwaway key pair. Nodes use Generate.
func New() (*Identity, error) {
	certPEM, keyPEM, err := newSelfSigned()
	if err != nil {
		return nil, err
	}
	return parseIdentity("memory", certPEM, keyPEM)
}

func parseIdentity(dir string, certPEM, keyPEM []byte) (*Identity, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity in %s: %w", dir, err)
	}
	return &Identity{Cert: cert, Fingerprint: FingerprintOf(cert.Certificate[0])}, nil
}

func newSelfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "aimwan"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"aimwan"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}
