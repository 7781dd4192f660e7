package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport"
	"github.com/aimwan/aimwan/transport/push"
)

const wireDoc = "../docs/wire-protocol.md"

// TestGoldenWANFrames pins the bytes of the WAN protocol for one file
// (testdata/wan-frames.golden, `go test -run TestGoldenWANFrames -update`
// rewrites it): the control stream's HELLO and HELLO_OK, then the file
// stream of the journal package's golden file as the source edge encodes it
// (FILE, the DATA blob of compressed metadata and dedupe stream) and the
// destination's RESULT. It reads them back field by field as
// docs/wire-protocol.md's tables describe them, checks that the blob is the
// file's metadata and payload, and has a destination edge rebuild the exact
// file from the golden bytes. The DATA blob holds zstd output: a new
// klauspost/compress or a change to dedupe's stream changes those bytes
// legitimately; rerun with -update and check that the rest still passes.
func TestGoldenWANFrames(t *testing.T) {
	file, err := os.ReadFile("../journal/testdata/golden.aimj")
	if err != nil {
		t.Fatal(err)
	}
	id, err := transport.GenerateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(SourceConfig{Peer: "127.0.0.1:1", Identity: id, Pins: transport.Pins{id.Fingerprint}, LANPins: lanPins(lanSrc),
		Level: dedupe.LevelDefault})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := src.encode(push.FileOffer("golden", 2, file), file)
	if err != nil {
		t.Fatal(err)
	}
	hello := WANHello{Version: Version, Mode: ModeOptimize, Node: "proxy-source", Params: src.paramsID, Mark: 2}
	ok := WANHello{Version: Version, Mode: ModeOptimize, Node: "proxy-destination", Params: src.paramsID, Epoch: 42,
		Capacity: 32 << 30, Mark: 3}
	var w bytes.Buffer
	writeFrame(&w, TypeHello, hello.encode(true))
	writeFrame(&w, TypeHelloOK, ok.encode(true))
	writeFrame(&w, TypeFile, enc.hdr.encode())
	writeBlob(&w, TypeData, enc.data)
	writeFrame(&w, TypeResult, Result{}.encode())
	testkit.CheckGolden(t, "wan-frames.golden", w.Bytes())
	b, err := os.ReadFile("testdata/wan-frames.golden")
	if err != nil {
		t.Fatal(err)
	}

	// Field by field, as the docs lay the frames out.
	sum := sha256.Sum256(file)
	meta, payload, err := journal.Split(file)
	if err != nil {
		t.Fatal(err)
	}
	helloWant := func(h WANHello) map[string]any {
		return map[string]any{"magic": []byte(Magic), "version": uint64(Version), "mode": uint64(ModeOptimize),
			"node": h.Node, "params": h.Params, "epoch": h.Epoch, "held": uint64(0),
			"capacity": h.Capacity, "mark": h.Mark}
	}
	blob := checkWANFrames(t, b, []string{"HELLO", "HELLO_OK", "FILE", "DATA", "RESULT"}, map[string]map[string]any{
		"HELLO":    helloWant(hello),
		"HELLO_OK": helloWant(ok),
		"FILE": {"volume": "golden", "name": journal.FileName(2), "file seq": uint64(2),
			"size": uint64(len(file)), "SHA-256": sum[:], "mode": uint64(ModeOptimize),
			"payload offset": uint64(journal.HeaderSize), "payload length": uint64(len(payload)),
			"metadata length": uint64(enc.hdr.MetaLen), "stream length": uint64(enc.hdr.StreamLen),
			"flags": uint64(fileAnyOrder)}, // the first file: nothing unacknowledged to rely on
		"RESULT": {"code": uint64(push.CodeOK), "message": ""},
	})
	if int64(len(blob)) != enc.hdr.MetaLen+enc.hdr.StreamLen {
		t.Fatalf("DATA blob of %d bytes, FILE announces %d+%d", len(blob), enc.hdr.MetaLen, enc.hdr.StreamLen)
	}
	gotMeta, err := unzstd(blob[:enc.hdr.MetaLen], int64(len(meta)))
	if err != nil || !bytes.Equal(gotMeta, meta) {
		t.Fatalf("the blob's metadata is not the file's header+index+footer (%v)", err)
	}

	// The destination edge rebuilds the exact file from the golden bytes.
	fileStream := b[5+int(binary.BigEndian.Uint32(b[1:])):]
	fileStream = fileStream[5+int(binary.BigEndian.Uint32(fileStream[1:])):]
	_, rebuilt, err := hostileDest(t).receive(bytes.NewReader(fileStream), io.Discard)
	if err != nil || !bytes.Equal(rebuilt, file) {
		t.Fatalf("rebuilt from the golden frames: %v (equal %v)", err, bytes.Equal(rebuilt, file))
	}
}

// checkWANFrames decodes the frames of b, named in order by names, with the
// docs' framing and frame tables, compares each with want (by name), and
// returns the DATA blob (which must be one piece).
func checkWANFrames(t *testing.T, b []byte, names []string, want map[string]map[string]any) []byte {
	t.Helper()
	frames := wanDocFrames(t)
	_, hdrRows := testkit.DocTable(t, wireDoc, "## Framing")
	if len(hdrRows) != 3 || hdrRows[0][1] != "1" || hdrRows[1][1] != "4" {
		t.Fatalf("%s: frame header table %q: want a 1-byte type and a 4-byte length", wireDoc, hdrRows)
	}
	var blob []byte
	p := b
	for i, name := range names {
		typ, n := int(p[0]), int(binary.BigEndian.Uint32(p[1:]))
		body := p[5 : 5+n]
		p = p[5+n:]
		f := frames[typ]
		if f.name != name {
			t.Fatalf("frame %d: type %d, the docs name it %q, want %s", i, typ, f.name, name)
		}
		got := testkit.DecodeWire(t, testkit.ParseWireFields(t, f.body), body)
		if name != "DATA" {
			if !reflect.DeepEqual(got, want[name]) {
				t.Errorf("%s read per the docs: %v\nwant %v", name, got, want[name])
			}
			continue
		}
		for k, v := range got {
			if strings.HasSuffix(k, " flag") {
				if v != uint64(1) {
					t.Fatalf("DATA: one piece expected, flag %v", v)
				}
			} else {
				blob = v.([]byte)
			}
		}
	}
	if len(p) != 0 {
		t.Fatalf("%d bytes after the last frame", len(p))
	}
	return blob
}

// wanDocFrames reads the frame type table of docs/wire-protocol.md.
func wanDocFrames(t *testing.T) map[int]struct{ name, body string } {
	t.Helper()
	h, rows := testkit.DocTable(t, wireDoc, "| type | name")
	out := map[int]struct{ name, body string }{}
	for _, r := range rows {
		n, err := strconv.Atoi(r[0])
		if err != nil {
			t.Fatalf("%s: frame type %q", wireDoc, r[0])
		}
		out[n] = struct{ name, body string }{r[1], r[len(h)-1]}
	}
	return out
}

// TestGoldenStripedFrame pins the STRIPED frame (testdata/striped.golden)
// and reads it back as docs/wire-protocol.md's table describes it.
func TestGoldenStripedFrame(t *testing.T) {
	id := transport.TransferID{0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, 0xB0}
	var w bytes.Buffer
	writeFrame(&w, TypeStriped, Striped{ID: id, Size: 4_200_000, PartSize: 128 << 10}.encode())
	testkit.CheckGolden(t, "striped.golden", w.Bytes())
	b, err := os.ReadFile("testdata/striped.golden")
	if err != nil {
		t.Fatal(err)
	}
	checkWANFrames(t, b, []string{"STRIPED"}, map[string]map[string]any{
		"STRIPED": {"transfer ID": id[:], "size": uint64(4_200_000), "part size": uint64(128 << 10)},
	})
}
