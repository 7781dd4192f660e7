package aimdst

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestParseSnapshotNameTraversal: `aimwan dst export --snapshot` never
// names a file outside <snapshots>/<volume>/.
func TestParseSnapshotNameTraversal(t *testing.T) {
	for _, s := range []string{
		"../x", "v/../x", "v/..", "../../etc/passwd", "v/a/b", "/v/x", "v/x.img", "v/", "/x", "v/.", "./x",
		"v/x\x00y", "v/" + strings.Repeat("a", 65), "v/x y", "v\\..\\x",
	} {
		if vol, label, err := ParseSnapshotName(s); err == nil {
			t.Errorf("ParseSnapshotName(%q) = %q, %q, want an error", s, vol, label)
		}
	}
	vol, label, err := ParseSnapshotName("vol-1/daily_2")
	if err != nil || vol != "vol-1" || label != "daily_2" {
		t.Fatalf("valid name: %q %q %v", vol, label, err)
	}
	p := SnapshotPath("/snaps", vol, label)
	if rel, err := filepath.Rel("/snaps", p); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("snapshot path %s escapes /snaps", p)
	}
}
