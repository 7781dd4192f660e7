package push

import (
	"crypto/sha256"
	"fmt"

	"github.com/aimwan/aimwan/journal"
)

// Hello is what each side of a connection tells the other first.
type Hello struct {
	Node    string   // node name (same rules as a volume name)
	Volumes []string // volumes the node pushes (client) or accepts (server); informative
}

// Offer describes one file the client wants to push.
type Offer struct {
	Volume string   // volume the file belongs to (validName rules)
	Name   string   // journal file name: journal.FileName(Seq)
	Seq    uint64   // the file sequence (>= 1); receivers use it, never parse Name
	Size   int64    // file size in bytes
	SHA256 [32]byte // SHA-256 of the whole file
}

// FileOffer returns the offer of journal file seq of volume, whose bytes
// are b.
func FileOffer(volume string, seq uint64, b []byte) Offer {
	return Offer{Volume: volume, Name: journal.FileName(seq), Seq: seq, Size: int64(len(b)), SHA256: sha256.Sum256(b)}
}

// Validate checks an offer against the naming rules: a valid volume name, a
// file sequence of at least 1, a name that is exactly journal.FileName(Seq)
// (an offer whose name and sequence disagree is refused), and a size that
// is not negative. The server checks every offer before its Handler sees
// it; a Handler may call it again to guard its own callers.
func (o Offer) Validate() error {
	if err := validName(o.Volume); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	if o.Seq == 0 {
		return fmt.Errorf("file %q: file sequence 0 (must be at least 1)", truncate(o.Name))
	}
	if want := journal.FileName(o.Seq); o.Name != want {
		return fmt.Errorf("file name %q and file sequence %d disagree (want %s)", truncate(o.Name), o.Seq, want)
	}
	if o.Size < 0 {
		return fmt.Errorf("negative size %d", o.Size)
	}
	return nil
}

// truncate cuts a hostile name for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// validName checks a node or volume name (journal.ValidName: 1..64 of
// [A-Za-z0-9_-]).
func validName(s string) error { return journal.ValidName(s) }

// validateHello checks a hello from either side.
func validateHello(h Hello) error {
	if err := validName(h.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if len(h.Volumes) > MaxVolumes {
		return fmt.Errorf("%d volumes, limit %d", len(h.Volumes), MaxVolumes)
	}
	for _, v := range h.Volumes {
		if err := validName(v); err != nil {
			return fmt.Errorf("volume: %w", err)
		}
	}
	return nil
}

// validateOffer checks an offer (Offer.Validate) and a size limit
// (maxSize <= 0: no limit beyond non-negative).
func validateOffer(o Offer, maxSize int64) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if maxSize > 0 && o.Size > maxSize {
		return fmt.Errorf("size %d exceeds limit %d", o.Size, maxSize)
	}
	return nil
}
