package testkit

import (
	"strings"
	"testing"
)

func TestFirstDiff(t *testing.T) {
	for _, tc := range []struct{ want, got, has string }{
		{"a\nb\nc", "a\nx\nc", "line 2"},
		{"a\nb", "a\nb\nc", "line 3"},
		{"\x00\x01\x02", "\x00\x01\x03", "byte 2: want 0x02, got 0x03"},
		{"\x00\x01", "\x00\x01\x02", "sizes 2 and 3"},
		{"same", "same", "equal"},
	} {
		if d := FirstDiff([]byte(tc.want), []byte(tc.got)); !strings.Contains(d, tc.has) {
			t.Errorf("FirstDiff(%q, %q) = %q, want it to contain %q", tc.want, tc.got, d, tc.has)
		}
	}
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	n := 0
	WaitFor(t, 0, "a condition that holds at once", func() bool { return true })
	WaitFor(t, 10e9, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
}
