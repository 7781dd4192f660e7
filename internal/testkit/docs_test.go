package testkit

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDocTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.md")
	doc := "# T\n\n### Footer (8 bytes)\n\ntext\n\n| offset | size | field |\n|---:|---:|---|\n| 0 | 4 | magic `a|b` |\n| 4 | 4 | CRC |\n\nafter\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	h, rows := DocTable(t, path, "### Footer")
	want := [][]string{{"0", "4", "magic `a|b`"}, {"4", "4", "CRC"}}
	if !reflect.DeepEqual(h, []string{"offset", "size", "field"}) || !reflect.DeepEqual(rows, want) {
		t.Fatalf("header %q rows %q", h, rows)
	}
}

func TestParseAndDecodeWire(t *testing.T) {
	fields := ParseWireFields(t, "magic `\"AB\"` (2), version u16, node str, count u16, names str… (≤ 9), sum (3), bytes (rest of the body, ≤ 1 KiB) — a comment")
	got := []string{}
	for _, f := range fields {
		got = append(got, f.Name+":"+f.Type)
	}
	want := []string{"magic:bytes", "version:u16", "node:str", "count:u16", "names:str", "sum:bytes", "bytes:bytes"}
	if !reflect.DeepEqual(got, want) || !fields[4].Repeat || fields[6].Size != -1 {
		t.Fatalf("parsed %q (%+v)", got, fields)
	}
	body := []byte{'A', 'B', 0, 2, 0, 1, 'n', 0, 2, 0, 1, 'x', 0, 2, 'y', 'z', 1, 2, 3, 9, 9}
	v := DecodeWire(t, fields, body)
	if v["version"] != uint64(2) || v["node"] != "n" || !reflect.DeepEqual(v["names"], []string{"x", "yz"}) ||
		!reflect.DeepEqual(v["sum"], []byte{1, 2, 3}) || !reflect.DeepEqual(v["bytes"], []byte{9, 9}) {
		t.Fatalf("decoded %v", v)
	}
	blob := ParseWireFields(t, "blob: the data")
	if v := DecodeWire(t, blob, []byte{1, 7, 8}); v["the data flag"] != uint64(1) || !reflect.DeepEqual(v["the data"], []byte{7, 8}) {
		t.Fatalf("blob %v", v)
	}
}
