package journal

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"vol1", true},
		{"A_b-9", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"../x", false},
		{"a.b", false},
		{"a/b", false},
		{`a\b`, false},
		{".", false},
		{"a b", false},
		{"vol\x00", false},
		{"é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}
}

func TestFileName(t *testing.T) {
	for _, seq := range []uint64{1, 42, 9999999999999999} {
		n := FileName(seq)
		if len(n) != 16+len(Ext) {
			t.Fatalf("FileName(%d) = %q", seq, n)
		}
		got, err := ParseFileName(n)
		if err != nil || got != seq {
			t.Fatalf("ParseFileName(%q) = %d, %v", n, got, err)
		}
	}
	if FileName(42) != "0000000000000042.aimj" {
		t.Fatalf("FileName(42) = %q", FileName(42))
	}
	for _, bad := range []string{
		"", "0000000000000000.aimj", "42.aimj", "000000000000042.aimj", "0000000000000042.aimj.open",
		"0000000000000042.aimj.idx", "../0000000000000042.aimj", "dir/0000000000000042.aimj", "000000000000004x.aimj",
		"+000000000000042.aimj", "0000000000000042.AIMJ", "00000000000000042.aimj",
	} {
		if seq, err := ParseFileName(bad); err == nil || !errors.Is(err, ErrInvalidName) {
			t.Fatalf("ParseFileName(%q) = %d, %v; want ErrInvalidName", bad, seq, err)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name string
		r    Record
		ok   bool
	}{
		{"write", Record{Kind: KindWrite, Offset: 0, Length: size}, true},
		{"write at end", Record{Kind: KindWrite, Offset: size - 1, Length: 1}, true},
		{"write past end", Record{Kind: KindWrite, Offset: size - 1, Length: 2}, false},
		{"write empty", Record{Kind: KindWrite, Offset: 0, Length: 0}, false},
		{"write overflow", Record{Kind: KindWrite, Offset: 1, Length: 1<<63 - 1}, false},
		{"zero with crc", Record{Kind: KindZero, Offset: 0, Length: 1, CRC: 1}, false},
		{"trim with label", Record{Kind: KindTrim, Offset: 0, Length: 1, Label: "x"}, false},
		{"snapshot", Record{Kind: KindSnapshot, Label: "s1"}, true},
		{"snapshot no label", Record{Kind: KindSnapshot}, false},
		{"snapshot bad label", Record{Kind: KindSnapshot, Label: "a.b"}, false},
		{"snapshot long label", Record{Kind: KindSnapshot, Label: strings.Repeat("l", 65)}, false},
		{"snapshot with args", Record{Kind: KindSnapshot, Label: "s", Args: []KV{{"k", "v"}}}, false},
		{"custom", Record{Kind: KindCustom, Label: "c", Args: []KV{{"k", "v"}, {"k2", ""}}}, true},
		{"custom bad key", Record{Kind: KindCustom, Label: "c", Args: []KV{{"k=1", "v"}}}, false},
		{"custom long value", Record{Kind: KindCustom, Label: "c", Args: []KV{{"k", strings.Repeat("v", MaxArgValueLen+1)}}}, false},
		{"custom max value", Record{Kind: KindCustom, Label: "c", Args: []KV{{"k", strings.Repeat("v", MaxArgValueLen)}}}, true},
		{"custom bad utf8", Record{Kind: KindCustom, Label: "c", Args: []KV{{"k", "\xff"}}}, false},
		{"custom too many args", Record{Kind: KindCustom, Label: "c", Args: make([]KV, MaxArgs+1)}, false},
		{"group marker", Record{Kind: KindSnapshot, Label: "s", Group: "g", GroupSeq: 1}, true},
		{"group without seq", Record{Kind: KindSnapshot, Label: "s", Group: "g"}, false},
		{"seq without group", Record{Kind: KindSnapshot, Label: "s", GroupSeq: 1}, false},
		{"bad group", Record{Kind: KindSnapshot, Label: "s", Group: "g/1", GroupSeq: 1}, false},
		{"marker with length", Record{Kind: KindCustom, Label: "c", Length: 1}, false},
		{"kind 0", Record{Kind: 0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate(size)
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("error %v does not wrap ErrInvalidRecord", err)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindWrite: "write", KindZero: "zero", KindTrim: "trim", KindSnapshot: "snapshot", KindCustom: "custom", 77: "kind(77)"} {
		if k.String() != want {
			t.Fatalf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}
