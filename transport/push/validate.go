package push

import (
	"fmt"
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

// TODO(push): switch to journal.ValidName / journal.ParseFileName once the
// journal package lands; these private checks follow the same rules.

// validName checks a node or volume name: 1..64 of [A-Za-z0-9_-].
func validName(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return fmt.Errorf("name %q: length %d not in 1..64", clip(s), len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return fmt.Errorf("name %q: byte %q at %d not in [A-Za-z0-9_-]", clip(s), c, i)
		}
	}
	return nil
}

// validFileName checks a journal file name: 16 decimal digits + ".aimj",
// sequence not zero.
func validFileName(s string) error {
	const suffix = ".aimj"
	if len(s) != 16+len(suffix) || s[16:] != suffix {
		return fmt.Errorf("file name %q: want 16 digits and %q", clip(s), suffix)
	}
	zero := true
	for i := 0; i < 16; i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("file name %q: want 16 digits and %q", clip(s), suffix)
		}
		if s[i] != '0' {
			zero = false
		}
	}
	if zero {
		return fmt.Errorf("file name %q: sequence 0 is not used", s)
	}
	return nil
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

// clip shortens hostile strings for error messages.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
