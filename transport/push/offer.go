package push

import (
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
	Name   string   // journal file name, "%016d.aimj"
	Size   int64    // file size in bytes
	SHA256 [32]byte // SHA-256 of the whole file
}

// validName checks a node or volume name (journal.ValidName: 1..64 of
// [A-Za-z0-9_-]).
func validName(s string) error { return journal.ValidName(s) }

// validFileName checks a journal file name ("%016d.aimj", sequence >= 1).
func validFileName(s string) error {
	_, err := journal.ParseFileName(s)
	return err
}

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

// validateOffer checks an offer against the naming rules and a size limit
// (maxSize <= 0: no limit beyond non-negative).
func validateOffer(o Offer, maxSize int64) error {
	if err := validName(o.Volume); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	if err := validFileName(o.Name); err != nil {
		return err
	}
	if o.Size < 0 {
		return fmt.Errorf("negative size %d", o.Size)
	}
	if maxSize > 0 && o.Size > maxSize {
		return fmt.Errorf("size %d exceeds limit %d", o.Size, maxSize)
	}
	return nil
}
