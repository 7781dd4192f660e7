package testkit

import (
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// DocTable returns the rows of the first Markdown table that follows the
// first line of the file at path starting with heading (a heading such as
// "### Footer", or any line of text): its header cells and its body rows,
// every cell trimmed, the separator row dropped. Golden format tests read
// the offsets, sizes and field lists of docs/*.md with it, so that the docs
// and the bytes cannot drift apart. The test fails when the heading or the
// table is missing.
func DocTable(t testing.TB, path, heading string) (header []string, rows [][]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(lines[i], heading) {
		i++
	}
	if i == len(lines) {
		t.Fatalf("%s: no line starts with %q", path, heading)
	}
	for i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "|") {
		i++
	}
	for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
		cells := splitRow(lines[i])
		switch {
		case header == nil:
			header = cells
		case isSeparator(cells):
		default:
			rows = append(rows, cells)
		}
	}
	if header == nil || len(rows) == 0 {
		t.Fatalf("%s: no table after %q", path, heading)
	}
	return header, rows
}

// splitRow splits a table row on the pipes that are not inside backticks.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	code := false
	for _, r := range line {
		switch {
		case r == '`':
			code = !code
			cur.WriteRune(r)
		case r == '|' && !code:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

// WireField is one field of a frame body as the protocol docs write it
// ("id u64, volume str, SHA-256 (32), magic `"AIMP"` (4), volumes str…"):
// a name followed by its type.
type WireField struct {
	Name string
	// Type is u8, u16, u32, u64 or i64 (big-endian integers), str (a u16
	// length and that many bytes), bytes (Size raw bytes, or the rest of
	// the body when Size is -1), or blob (a flag byte, then the rest).
	Type string
	Size int
	// Literal is the value a quoted literal in the docs fixes ("AIMP").
	Literal string
	// Repeat: the field occurs as many times as the integer field before
	// it says ("volumes str…").
	Repeat bool
}

var (
	wireSize    = regexp.MustCompile(`^\((\d+)\)$`)
	wireLiteral = regexp.MustCompile("`\"([^\"]*)\"`")
)

// ParseWireFields parses a body description of docs/push-protocol.md or
// docs/wire-protocol.md. Commentary after " — " and parenthesised notes
// after a type are ignored. An item it cannot read fails the test.
func ParseWireFields(t testing.TB, spec string) []WireField {
	t.Helper()
	spec, _, _ = strings.Cut(spec, " — ")
	if rest, ok := strings.CutPrefix(spec, "blob:"); ok {
		return []WireField{{Name: strings.TrimSpace(rest), Type: "blob", Size: -1}}
	}
	var out []WireField
	for _, item := range splitTop(spec) {
		f := WireField{}
		if m := wireLiteral.FindStringSubmatch(item); m != nil {
			f.Literal = m[1]
			item = strings.Replace(item, m[0], "", 1)
		}
		words := strings.Fields(item)
		typ := -1
		for i, w := range words {
			base := strings.TrimSuffix(w, "…")
			if base == "u8" || base == "u16" || base == "u32" || base == "u64" || base == "i64" || base == "str" {
				f.Type, f.Repeat, typ = base, base != w, i
				break
			}
			if m := wireSize.FindStringSubmatch(w); m != nil {
				f.Type, typ = "bytes", i
				f.Size, _ = strconv.Atoi(m[1])
				break
			}
			if w == "(rest" {
				f.Type, f.Size, typ = "bytes", -1, i
				break
			}
		}
		if typ < 0 && f.Literal != "" {
			f.Type, f.Size, typ = "bytes", len(f.Literal), len(words)
		}
		if typ <= 0 {
			t.Fatalf("cannot read the wire field %q of %q", item, spec)
		}
		f.Name = strings.Join(words[:typ], " ")
		if f.Type == "bytes" && f.Literal != "" && f.Size != len(f.Literal) {
			t.Fatalf("wire field %q: literal %q of %d bytes, size %d", item, f.Literal, len(f.Literal), f.Size)
		}
		out = append(out, f)
	}
	return out
}

// splitTop splits on the commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// DecodeWire reads body field by field as fields describe it and returns
// the values by name: integers as uint64, str as string, bytes and blob as
// []byte (a blob's flag byte under Name+" flag"), a repeated field as
// []string or []uint64. It fails the test on a short or long body, or on a
// literal that does not match.
func DecodeWire(t testing.TB, fields []WireField, body []byte) map[string]any {
	t.Helper()
	out := map[string]any{}
	p := body
	take := func(n int, what string) []byte {
		t.Helper()
		if n < 0 || n > len(p) {
			t.Fatalf("field %s: %d bytes wanted, %d left of a %d-byte body", what, n, len(p), len(body))
		}
		v := p[:n]
		p = p[n:]
		return v
	}
	var last uint64
	for _, f := range fields {
		n := 1
		if f.Repeat {
			n = int(last)
		}
		var strs []string
		var ints []uint64
		for range n {
			switch f.Type {
			case "u8", "u16", "u32", "u64", "i64":
				size := map[string]int{"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i64": 8}[f.Type]
				b := take(size, f.Name)
				var v uint64
				for _, c := range b {
					v = v<<8 | uint64(c)
				}
				last = v
				ints = append(ints, v)
			case "str":
				l := binary.BigEndian.Uint16(take(2, f.Name))
				strs = append(strs, string(take(int(l), f.Name)))
			case "bytes":
				size := f.Size
				if size < 0 {
					size = len(p)
				}
				v := take(size, f.Name)
				if f.Literal != "" && string(v) != f.Literal {
					t.Fatalf("field %s: %q, the docs say %q", f.Name, v, f.Literal)
				}
				out[f.Name] = v
			case "blob":
				out[f.Name+" flag"] = uint64(take(1, f.Name)[0])
				out[f.Name] = take(len(p), f.Name)
			default:
				t.Fatalf("field %s: unknown type %q", f.Name, f.Type)
			}
		}
		switch {
		case f.Repeat && f.Type == "str":
			out[f.Name] = strs
		case f.Repeat:
			out[f.Name] = ints
		case len(strs) == 1:
			out[f.Name] = strs[0]
		case len(ints) == 1:
			out[f.Name] = ints[0]
		}
	}
	if len(p) != 0 {
		t.Fatalf("%d bytes left after the fields %s", len(p), fmt.Sprint(fields))
	}
	return out
}
