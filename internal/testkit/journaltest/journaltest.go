// Package journaltest forges journal files for tests of what a receiver
// refuses: valid files (checksums, CRCs and SHA-256 right) whose numbers lie.
package journaltest

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/aimwan/aimwan/journal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Renumber returns a copy of the sealed journal file b whose records are
// numbered from baseSeq on and whose file sequence is fileSeq (0: keep it),
// with every checksum made right again: a well-formed file that claims a
// place in the volume's sequence it does not have (a cursor jump, a file
// from a reset journal). The offsets are those of docs/journal-format.md.
func Renumber(t testing.TB, b []byte, fileSeq, baseSeq uint64) []byte {
	t.Helper()
	f, err := journal.Parse("(renumber)", b)
	if err != nil {
		t.Fatalf("renumber: %v", err)
	}
	out := append([]byte(nil), b...)
	le := binary.LittleEndian
	hs := f.Header.Size()
	if fileSeq != 0 {
		le.PutUint64(out[16:], fileSeq)
	}
	le.PutUint64(out[24:], baseSeq)
	le.PutUint32(out[hs-4:], crc32.Checksum(out[:hs-4], castagnoli))
	payloadOff, payloadLen, err := journal.Layout(b)
	if err != nil {
		t.Fatalf("renumber: %v", err)
	}
	off := payloadOff + payloadLen
	for i := range f.Records {
		le.PutUint64(out[off+8:], baseSeq+uint64(i))
		off += journal.RecordFixed + int64(le.Uint16(out[off+2:]))
	}
	ft := out[len(out)-journal.FooterSize:]
	le.PutUint64(ft[72:], baseSeq)
	le.PutUint64(ft[80:], baseSeq+uint64(len(f.Records))-1)
	sum := sha256.Sum256(out[:len(out)-journal.FooterSize])
	copy(ft[88:120], sum[:])
	le.PutUint32(ft[124:], crc32.Checksum(ft[:124], castagnoli))
	if _, err := journal.Parse("(renumbered)", out); err != nil {
		t.Fatalf("renumbered file does not parse: %v", err)
	}
	return out
}
