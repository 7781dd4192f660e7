package push

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

const protocolDoc = "../../docs/push-protocol.md"

// goldenFile is the journal file the golden exchange pushes: the journal
// package's golden file (file 2 of volume "golden").
func goldenFile(t *testing.T) ([]byte, Offer) {
	t.Helper()
	b, err := os.ReadFile("../../journal/testdata/golden.aimj")
	if err != nil {
		t.Fatal(err)
	}
	return b, FileOffer("golden", 2, b)
}

// TestGoldenFrames pins the bytes of one file's push (testdata/frames.golden,
// `go test -run TestGoldenFrames -update` rewrites it): HELLO, HELLO_OK,
// OFFER, ACCEPT, DATA, END, ACK as AppendMsg writes them; then reads them
// back field by field as docs/push-protocol.md's frame and body tables
// describe them, and with ReadMsg.
func TestGoldenFrames(t *testing.T) {
	file, o := goldenFile(t)
	msgs := []Msg{
		{Type: TypeHello, Version: Version, Hello: Hello{Node: "src", Volumes: []string{"golden"}}},
		{Type: TypeHelloOK, Version: Version, Hello: Hello{Node: "dst", Volumes: []string{"golden"}}},
		{Type: TypeOffer, ID: 1, Offer: o},
		{Type: TypeAccept, ID: 1, Offset: 0},
		{Type: TypeData, ID: 1, Offset: 0, Data: file},
		{Type: TypeEnd, ID: 1},
		{Type: TypeAck, ID: 1},
	}
	var b []byte
	for _, m := range msgs {
		b = AppendMsg(b, m)
	}
	testkit.CheckGolden(t, "frames.golden", b)
	b, err := os.ReadFile("testdata/frames.golden")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(file)
	hello := func(node string) map[string]any {
		return map[string]any{"magic": []byte(Magic), "version": uint64(Version), "node": node,
			"volume count": uint64(1), "volumes": []string{"golden"}}
	}
	want := []map[string]any{
		hello("src"), hello("dst"),
		{"id": uint64(1), "volume": "golden", "file name": journal.FileName(2), "file seq": uint64(2),
			"size": uint64(len(file)), "SHA-256": sum[:]},
		{"id": uint64(1), "resume offset": uint64(0)},
		{"id": uint64(1), "offset": uint64(0), "bytes": file},
		{"id": uint64(1)},
		{"id": uint64(1)},
	}
	frames := docFrames(t, protocolDoc, "| type | name")
	typeSize, lenSize := frameHeaderSizes(t, protocolDoc, "## Frames")
	p := b
	for i, m := range msgs {
		if len(p) < typeSize+lenSize {
			t.Fatalf("frame %d: %d bytes left", i, len(p))
		}
		typ := int(p[0])
		n := int(binary.BigEndian.Uint32(p[typeSize:]))
		body := p[typeSize+lenSize : typeSize+lenSize+n]
		f, ok := frames[typ]
		if !ok || f.name != m.Type.String() {
			t.Fatalf("frame %d: type %d, the docs name it %q, want %s", i, typ, f.name, m.Type)
		}
		got := testkit.DecodeWire(t, testkit.ParseWireFields(t, f.body), body)
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("%s read per the docs: %v\nwant %v", f.name, got, want[i])
		}
		var buf []byte
		if dm, err := ReadMsg(bytes.NewReader(p), &buf); err != nil || dm.Type != m.Type || dm.ID != m.ID {
			t.Errorf("%s: ReadMsg gives %v, %v", f.name, dm.Type, err)
		}
		p = p[typeSize+lenSize+n:]
	}
	if len(p) != 0 {
		t.Fatalf("%d bytes after the last frame", len(p))
	}
}

// docFrame is one row of a frame type table: its name and body description.
type docFrame struct{ name, body string }

// docFrames reads a frame type table (type | name | ... | body).
func docFrames(t *testing.T, doc, heading string) map[int]docFrame {
	t.Helper()
	h, rows := testkit.DocTable(t, doc, heading)
	out := map[int]docFrame{}
	for _, r := range rows {
		n, err := strconv.Atoi(r[0])
		if err != nil {
			t.Fatalf("%s: frame type %q", doc, r[0])
		}
		out[n] = docFrame{name: r[1], body: r[len(h)-1]}
	}
	return out
}

// frameHeaderSizes reads the sizes of the type and length fields of the
// frame header table (field | size | meaning).
func frameHeaderSizes(t *testing.T, doc, heading string) (typeSize, lenSize int) {
	t.Helper()
	_, rows := testkit.DocTable(t, doc, heading)
	if len(rows) != 3 || rows[0][0] != "type" || rows[1][0] != "length" || rows[2][0] != "body" {
		t.Fatalf("%s: frame header table %q is not type, length, body", doc, rows)
	}
	typeSize, _ = strconv.Atoi(rows[0][1])
	lenSize, _ = strconv.Atoi(rows[1][1])
	if typeSize != 1 || lenSize != 4 {
		t.Fatalf("%s: frame header of %d+%d bytes; this decoder reads a 1-byte type and a 4-byte big-endian length", doc, typeSize, lenSize)
	}
	return typeSize, lenSize
}
