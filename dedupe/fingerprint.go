package dedupe

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Fingerprint is the SHA-256 of a chunk's bytes: its name in every store,
// index and reference.
type Fingerprint [32]byte

// Sum returns the fingerprint of data.
func Sum(data []byte) Fingerprint { return sha256.Sum256(data) }

// String is the hex form of the fingerprint.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// short is the first 8 bytes of the fingerprint: the key of a PeerIndex.
func (f Fingerprint) short() uint64 {
	s := binary.BigEndian.Uint64(f[:8])
	if s == 0 { // 0 means "none" in the peer index
		s = 1
	}
	return s
}
