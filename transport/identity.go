package transport

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	"github.com/aimwan/aimwan/transport/identity"
	"github.com/quic-go/quic-go"
)

// The node identity moved to package transport/identity, which the LAN push
// legs share; these names keep the WAN side's callers as they were.

// File names of an identity inside its directory.
const (
	CertFile = identity.CertFile
	KeyFile  = identity.KeyFile
)

// ErrNoIdentity is returned by LoadIdentity when the directory holds no identity.
var ErrNoIdentity = identity.ErrNoIdentity

// Fingerprint is the SHA-256 of a certificate's DER encoding.
type Fingerprint = identity.Fingerprint

// Identity is a node's TLS certificate with its private key.
type Identity = identity.Identity

// ParseFingerprint is identity.ParseFingerprint.
func ParseFingerprint(s string) (Fingerprint, error) { return identity.ParseFingerprint(s) }

// FingerprintOf is identity.FingerprintOf.
func FingerprintOf(certDER []byte) Fingerprint { return identity.FingerprintOf(certDER) }

// GenerateIdentity is identity.Generate.
func GenerateIdentity(dir string) (*Identity, error) { return identity.Generate(dir) }

// LoadIdentity is identity.Load.
func LoadIdentity(dir string) (*Identity, error) { return identity.Load(dir) }

// statelessResetKey derives the QUIC stateless-reset key from the private
// key: stable across restarts, secret, and different per node.
func statelessResetKey(id *Identity) (quic.StatelessResetKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.Cert.PrivateKey)
	if err != nil {
		return quic.StatelessResetKey{}, fmt.Errorf("derive stateless reset key: %w", err)
	}
	return quic.StatelessResetKey(sha256.Sum256(append([]byte("aimwan stateless reset key\x00"), der...))), nil
}
