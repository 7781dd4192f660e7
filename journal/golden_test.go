package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

const formatDoc = "../docs/journal-format.md"

// goldenTime is the clock of the golden file: every timestamp in it.
var goldenTime = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

// The golden file is file 2 of its volume; file 1 holds 4 zero records, so
// the golden file's base seq (5) differs from its file seq. File 1 is of
// stream goldenFirst; an initialize starts stream goldenStream with file 2.
const (
	goldenFileSeq = 2
	goldenBaseSeq = 5
)

var (
	goldenFirst  = StreamID{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff}
	goldenStream = StreamID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
)

// goldenRecords are the records of testdata/golden.aimj, in order, with the
// data of the writes: two writes, a zero range, a snapshot marker, a group
// marker and a custom marker with an argument.
func goldenRecords() ([]Record, [][]byte) {
	pattern := func(n int, c byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = c + byte(i%26)
		}
		return b
	}
	return []Record{
			{Kind: KindWrite, Offset: 4096, Length: 100},
			{Kind: KindWrite, Offset: 0, Length: 60},
			{Kind: KindZero, Offset: 8192, Length: 4096},
			{Kind: KindSnapshot, Label: "snap1"},
			{Kind: KindSnapshot, Label: "gsnap", Group: "grp", GroupSeq: 7, Members: []string{"golden", "other"}},
			{Kind: KindCustom, Label: "hook", Args: []KV{{Key: "k", Value: "v"}}},
		}, [][]byte{
			pattern(100, 'a'), pattern(60, 'A'), nil, nil, nil, nil,
		}
}

// goldenJournal seals the golden records with the Writer and returns the
// file's bytes, then the heartbeat file (file 3) the Writer seals right
// after it.
func goldenJournal(t *testing.T) ([]byte, []byte) {
	t.Helper()
	dir := t.TempDir()
	w, _, err := OpenWriter(WriterConfig{Dir: dir, Volume: "golden", VolumeSize: 1 << 20,
		Now: func() time.Time { return goldenTime }, Stream: goldenFirst})
	if err != nil {
		t.Fatal(err)
	}
	for range goldenBaseSeq - 1 {
		if _, err := w.Zero(0, 512, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.StartStream(goldenStream, StartFull); err != nil {
		t.Fatal(err)
	}
	recs, data := goldenRecords()
	for i, r := range recs {
		switch r.Kind {
		case KindWrite:
			_, err = w.Write(r.Offset, data[i])
		case KindZero:
			_, err = w.Zero(r.Offset, r.Length, false)
		default:
			_, err = w.Marker(r)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Heartbeat(); !ok || err != nil {
		t.Fatalf("heartbeat: %v, %v", ok, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName(goldenFileSeq)))
	if err != nil {
		t.Fatal(err)
	}
	hb, err := os.ReadFile(filepath.Join(dir, FileName(goldenFileSeq+1)))
	if err != nil {
		t.Fatal(err)
	}
	return b, hb
}

// TestGoldenJournalFile pins the bytes of a sealed journal file
// (testdata/golden.aimj; `go test -run TestGoldenJournalFile -update`
// rewrites it) and reads them back field by field at the offsets, sizes and
// values that docs/journal-format.md's tables state, so the format, the
// file and the docs cannot drift apart.
func TestGoldenJournalFile(t *testing.T) {
	b, hb := goldenJournal(t)
	testkit.CheckGolden(t, "golden.aimj", b)
	testkit.CheckGolden(t, "golden-heartbeat.aimj", hb)
	checkGoldenHeartbeat(t)
	b, err := os.ReadFile(filepath.Join("testdata", "golden.aimj"))
	if err != nil {
		t.Fatal(err)
	}
	recs, data := goldenRecords()
	var payload int64
	for _, d := range data {
		payload += int64(len(d))
	}
	hdrEnd := int64(HeaderSize)
	ftStart := int64(len(b)) - FooterSize
	indexLen := ftStart - hdrEnd - payload

	// Header (its table has a value column).
	crc := func(p []byte) uint64 { return uint64(crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))) }
	checkRows(t, "header", b, 0, docRows(t, "### Header"), []expect{
		{"magic", nil, hexIn(t, docCell(t, "### Header", "magic", 3))},
		{"version", u(Version), nil},
		{"header size", u(HeaderSize), nil},
		{"flags", u(0), nil},
		{"file seq", u(goldenFileSeq), nil},
		{"base seq", u(goldenBaseSeq), nil},
		{"created", u(uint64(goldenTime.UnixNano())), nil},
		{"volume size", u(1 << 20), nil},
		{"volume name length", u(6), nil},
		{"volume name", nil, append([]byte("golden"), make([]byte, 58)...)},
		{"stream start", u(uint64(StartFull)), nil},
		{"stream id", nil, goldenStream[:]},
		{"reserved", u(0), nil},
		{"header CRC32C", u(crc(b[:HeaderSize-4])), nil},
	})

	// Payload region: the writes' data back to back, right after the header.
	want := bytes.Join(data, nil)
	if got := b[hdrEnd : hdrEnd+payload]; !bytes.Equal(got, want) {
		t.Errorf("payload region at %d: %q, want the writes' data back to back", hdrEnd, got)
	}

	// Index: one entry per record (fixed part, then the marker fields).
	if off := checkIndex(t, b, hdrEnd+payload, goldenBaseSeq, recs, data); off != ftStart {
		t.Fatalf("index ends at %d, footer starts at %d", off, ftStart)
	}

	// Footer.
	sum := sha256.Sum256(b[:ftStart])
	checkRows(t, "footer", b, ftStart, docRows(t, "### Footer"), []expect{
		{"magic", nil, hexIn(t, docCell(t, "### Footer", "magic", 2))},
		{"version", u(Version), nil},
		{"footer size", u(FooterSize), nil},
		{"reserved", u(0), nil},
		{"payload offset", u(HeaderSize), nil},
		{"payload length P", u(uint64(payload)), nil},
		{"index offset", u(uint64(hdrEnd + payload)), nil},
		{"index length I", u(uint64(indexLen)), nil},
		{"record count", u(uint64(len(recs))), nil},
		{"write records", u(2), nil},
		{"zero records", u(1), nil},
		{"trim records", u(0), nil},
		{"marker records", u(3), nil},
		{"first seq", u(goldenBaseSeq), nil},
		{"last seq", u(uint64(goldenBaseSeq + len(recs) - 1)), nil},
		{"SHA-256 of bytes", nil, sum[:]},
		{"footer CRC32C", u(crc(b[ftStart : ftStart+124])), nil},
	})
	f, err := Parse("golden.aimj", b)
	if err != nil {
		t.Fatalf("the golden file does not parse: %v", err)
	}
	if f.Header.Stream != goldenStream || f.Header.Start != StartFull || f.Header.Version != Version {
		t.Errorf("golden header read back as %+v", f.Header)
	}
}

// checkGoldenHeartbeat reads testdata/golden-heartbeat.aimj, the heartbeat
// file sealed right after the golden file, at the offsets of the docs'
// tables: a header, an empty payload region, one watermark record (the
// docs' watermark column) and the footer.
func checkGoldenHeartbeat(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden-heartbeat.aimj"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != HeaderSize+RecordFixed+FooterSize {
		t.Fatalf("heartbeat file of %d bytes, want %d", len(b), HeaderSize+RecordFixed+FooterSize)
	}
	seq := uint64(goldenBaseSeq + len(func() []Record { r, _ := goldenRecords(); return r }()))
	if off := checkIndex(t, b, HeaderSize, seq, []Record{{Kind: KindWatermark}}, [][]byte{nil}); off != HeaderSize+RecordFixed {
		t.Fatalf("heartbeat index ends at %d", off)
	}
	ft := int64(HeaderSize + RecordFixed)
	if got := binary.LittleEndian.Uint32(b[ft+64:]); got != 1 {
		t.Errorf("heartbeat footer counts %d marker records, want 1 (the watermark)", got)
	}
	f, err := Parse(FileName(goldenFileSeq+1), b)
	if err != nil {
		t.Fatalf("the heartbeat golden file does not parse: %v", err)
	}
	if len(f.Records) != 1 || f.Records[0].Kind != KindWatermark || !f.Records[0].Time.Equal(goldenTime) || f.Header.Stream != goldenStream {
		t.Errorf("heartbeat golden read back as %+v, %+v", f.Header, f.Records)
	}
}

// TestGoldenJournalFileV2 reads testdata/golden-v2.aimj, the golden file as
// format version 2 wrote it (before watermark records), at the offsets of the
// docs' header table: version 2 files left in a buffer by an older build are
// still read, pushed and destaged.
func TestGoldenJournalFileV2(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden-v2.aimj"))
	if err != nil {
		t.Fatal(err)
	}
	crc := func(p []byte) uint64 { return uint64(crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))) }
	var rows [][]string // the version 2 header is laid out as version 3's; its value column names version 3
	for _, r := range docRows(t, "### Header") {
		rows = append(rows, r[:3])
	}
	checkRows(t, "version 2 header", b, 0, rows, []expect{
		{"magic", nil, hexIn(t, docCell(t, "### Header", "magic", 3))},
		{"version", u(2), nil},
		{"header size", u(HeaderSize), nil},
		{"flags", u(0), nil},
		{"file seq", u(goldenFileSeq), nil},
		{"base seq", u(goldenBaseSeq), nil},
		{"created", u(uint64(goldenTime.UnixNano())), nil},
		{"volume size", u(1 << 20), nil},
		{"volume name length", u(6), nil},
		{"volume name", nil, append([]byte("golden"), make([]byte, 58)...)},
		{"stream start", u(uint64(StartFull)), nil},
		{"stream id", nil, goldenStream[:]},
		{"reserved", u(0), nil},
		{"header CRC32C", u(crc(b[:HeaderSize-4])), nil},
	})
	f, err := Parse(FileName(goldenFileSeq), b)
	if err != nil {
		t.Fatalf("the version 2 golden file does not parse: %v", err)
	}
	recs, _ := goldenRecords()
	if f.Header.Version != 2 || f.Header.Stream != goldenStream || len(f.Records) != len(recs) {
		t.Fatalf("version 2 golden read back as %+v with %d records", f.Header, len(f.Records))
	}
	meta, payload, err := Split(b)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := Join(meta, payload); err != nil || !bytes.Equal(j, b) {
		t.Fatalf("Split and Join of a version 2 file: %v", err)
	}
}

// TestGoldenJournalFileV1 reads testdata/golden-v1.aimj, the same records
// as written by format version 1 (before stream ids and group members), at
// the offsets of the docs' version 1 header table: files of version 1 left
// in a buffer by an older build are still read, pushed and destaged.
func TestGoldenJournalFileV1(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden-v1.aimj"))
	if err != nil {
		t.Fatal(err)
	}
	crc := func(p []byte) uint64 { return uint64(crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))) }
	checkRows(t, "version 1 header", b, 0, docRows(t, "### Header of version 1"), []expect{
		{"magic", nil, hexIn(t, docCell(t, "### Header", "magic", 3))},
		{"version", u(1), nil},
		{"header size", u(HeaderSizeV1), nil},
		{"flags", u(0), nil},
		{"file seq", u(goldenFileSeq), nil},
		{"base seq", u(goldenBaseSeq), nil},
		{"created", u(uint64(goldenTime.UnixNano())), nil},
		{"volume size", u(1 << 20), nil},
		{"volume name length", u(6), nil},
		{"volume name", nil, append([]byte("golden"), make([]byte, 58)...)},
		{"reserved", u(0), nil},
		{"header CRC32C", u(crc(b[:HeaderSizeV1-4])), nil},
	})
	f, err := Parse(FileName(goldenFileSeq), b)
	if err != nil {
		t.Fatalf("the version 1 golden file does not parse: %v", err)
	}
	if f.Header.Version != 1 || !f.Header.Stream.IsZero() || f.Header.Size() != HeaderSizeV1 {
		t.Errorf("version 1 header read back as %+v", f.Header)
	}
	recs, data := goldenRecords()
	recs[4].Members = nil // version 1 has no member list
	for i := range recs {
		recs[i].Seq = uint64(goldenBaseSeq + i)
		if recs[i].Kind == KindWrite {
			recs[i].Length = int64(len(data[i]))
		}
	}
	if len(f.Records) != len(recs) {
		t.Fatalf("version 1 golden: %d records, want %d", len(f.Records), len(recs))
	}
	for i, r := range f.Records {
		w := recs[i]
		if r.Kind != w.Kind || r.Seq != w.Seq || r.Label != w.Label || r.Group != w.Group || len(r.Members) != 0 ||
			(r.Kind == KindWrite && !bytes.Equal(f.Data(r), data[i])) {
			t.Errorf("version 1 record %d = %+v, want %+v", i, r, w)
		}
	}
	meta, payload, err := Split(b)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := Join(meta, payload); err != nil || !bytes.Equal(j, b) {
		t.Fatalf("Split and Join of a version 1 file: %v", err)
	}
}

// checkIndex reads the index entries of recs from off per the docs' index
// and marker-field tables and returns where the index ends.
func checkIndex(t *testing.T, b []byte, off int64, base uint64, recs []Record, data [][]byte) int64 {
	t.Helper()
	crc := func(p []byte) uint64 { return uint64(crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))) }
	_, idxRows := testkit.DocTable(t, formatDoc, "### Index")
	var dataOff int64
	for i, r := range recs {
		r.Seq, r.Time = base+uint64(i), goldenTime
		v := markerVar(r)
		var dcrc, doff uint64
		if r.Kind == KindWrite {
			dcrc, doff = crc(data[i]), uint64(dataOff)
			dataOff += r.Length
		}
		ro, rl := uint64(r.Offset), uint64(r.Length)
		if !r.Kind.HasRange() {
			ro, rl = 0, 0
		}
		col := map[Kind]int{KindWrite: 3, KindZero: 4, KindTrim: 4, KindSnapshot: 5, KindCustom: 5, KindWatermark: 6}[r.Kind]
		checkIndexRows(t, b, off, idxRows, col, r, []expect{
			{"kind", u(uint64(r.Kind)), nil},
			{"flags", u(0), nil},
			{"variable length V", u(uint64(len(v))), nil},
			{"CRC32C of the data", u(dcrc), nil},
			{"sequence", u(r.Seq), nil},
			{"source timestamp (Unix ns)", u(uint64(goldenTime.UnixNano())), nil},
			{"volume offset", u(ro), nil},
			{"length (data / range)", u(rl), nil},
			{"data offset in payload region", u(doff), nil},
			{"marker fields", nil, v},
		})
		if r.Kind.IsMarker() {
			checkMarkerFields(t, b[off+RecordFixed:off+RecordFixed+int64(len(v))], r)
		}
		off += RecordFixed + int64(len(v))
	}
	return off
}

// expect is the value one documented field must hold: an integer (stored
// little-endian in the field's size) or raw bytes.
type expect struct {
	field string // the doc's field text starts with this
	n     *uint64
	raw   []byte
}

func u(v uint64) *uint64 { return &v }

func docRows(t *testing.T, heading string) [][]string {
	t.Helper()
	_, rows := testkit.DocTable(t, formatDoc, heading)
	return rows
}

// docCell returns column col of the row of the table under heading whose
// field (column 2) starts with field.
func docCell(t *testing.T, heading, field string, col int) string {
	t.Helper()
	for _, r := range docRows(t, heading) {
		if strings.HasPrefix(r[2], field) {
			return r[col]
		}
	}
	t.Fatalf("%s: no field %q under %q", formatDoc, field, heading)
	return ""
}

var hexBytes = regexp.MustCompile("`((?:[0-9A-Fa-f]{2} )+[0-9A-Fa-f]{2})`")

// hexIn returns the bytes of the first backticked hex sequence of s.
func hexIn(t *testing.T, s string) []byte {
	t.Helper()
	m := hexBytes.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no hex bytes in %q", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// match returns the expectation for a doc field text: the one with the
// longest name the text starts with. Every documented field must have one.
func match(t *testing.T, what, field string, exps []expect) expect {
	t.Helper()
	best := -1
	for i, e := range exps {
		if strings.HasPrefix(field, e.field) && (best < 0 || len(e.field) > len(exps[best].field)) {
			best = i
		}
	}
	if best < 0 {
		t.Fatalf("%s: the docs' field %q is unknown to this test", what, field)
	}
	return exps[best]
}

// checkRows checks each row (offset | size | field ...) of a table at base
// in b: the bytes there are what the field must hold. A value column that
// starts with a number must agree too.
func checkRows(t *testing.T, what string, b []byte, base int64, rows [][]string, exps []expect) {
	t.Helper()
	for _, r := range rows {
		off, size := atoi(t, r[0]), atoi(t, r[1])
		e := match(t, what, r[2], exps)
		got := b[base+off : base+off+size]
		checkField(t, what+" "+r[2], got, e)
		if len(r) > 3 && e.n != nil {
			if n, ok := leadingNumber(r[3]); ok && n != *e.n {
				t.Errorf("%s %s: the docs' value %d, the file holds %d", what, r[2], n, *e.n)
			}
		}
	}
}

// checkIndexRows checks one index entry at off; col is the doc's column of
// the record's kind (write, zero/trim, snapshot/custom), whose plain numbers
// must agree with the file.
func checkIndexRows(t *testing.T, b []byte, off int64, rows [][]string, col int, r Record, exps []expect) {
	t.Helper()
	what := "index seq " + strconv.FormatUint(r.Seq, 10) + " (" + r.Kind.String() + ")"
	for _, row := range rows {
		e := match(t, what, row[2], exps)
		o := atoi(t, row[0])
		size := int64(len(e.raw))
		if row[1] != "V" {
			size = atoi(t, row[1])
		}
		checkField(t, what+" "+row[2], b[off+o:off+o+size], e)
		if e.n == nil {
			continue
		}
		nums := numbers(row[col])
		if len(nums) > 0 && !contains(nums, *e.n) && row[col] != "yes" && !strings.HasPrefix(row[col], ">") {
			t.Errorf("%s %s: the docs say %q, the file holds %d", what, row[2], row[col], *e.n)
		}
	}
}

func checkField(t *testing.T, what string, got []byte, e expect) {
	t.Helper()
	if e.n != nil {
		var v uint64
		switch len(got) {
		case 1:
			v = uint64(got[0])
		case 2:
			v = uint64(binary.LittleEndian.Uint16(got))
		case 4:
			v = uint64(binary.LittleEndian.Uint32(got))
		case 8:
			v = binary.LittleEndian.Uint64(got)
		default:
			if !bytes.Equal(got, make([]byte, len(got))) || *e.n != 0 {
				t.Errorf("%s: %d bytes, not an integer", what, len(got))
			}
			return
		}
		if v != *e.n {
			t.Errorf("%s: %d, want %d", what, v, *e.n)
		}
		return
	}
	if !bytes.Equal(got, e.raw) {
		t.Errorf("%s: % x, want % x", what, got, e.raw)
	}
}

// markerVar is the variable part a marker record must have.
func markerVar(r Record) []byte {
	if !r.Kind.IsMarker() {
		return nil
	}
	v := append([]byte{byte(len(r.Label))}, r.Label...)
	v = append(append(v, byte(len(r.Group))), r.Group...)
	v = binary.LittleEndian.AppendUint64(v, r.GroupSeq)
	v = append(v, byte(len(r.Args)))
	for _, a := range r.Args {
		v = append(append(v, byte(len(a.Key))), a.Key...)
		v = append(binary.LittleEndian.AppendUint16(v, uint16(len(a.Value))), a.Value...)
	}
	v = append(v, byte(len(r.Members)))
	for _, m := range r.Members {
		v = append(append(v, byte(len(m))), m...)
	}
	return v
}

// checkMarkerFields reads a marker's variable part as the docs' "Marker
// fields" table lays it out (size | field, in order).
func checkMarkerFields(t *testing.T, v []byte, r Record) {
	t.Helper()
	_, rows := testkit.DocTable(t, formatDoc, "Marker fields")
	p := v
	str := func(lenSize int) string {
		var n int
		if lenSize == 1 {
			n = int(p[0])
		} else {
			n = int(binary.LittleEndian.Uint16(p))
		}
		s := string(p[lenSize : lenSize+n])
		p = p[lenSize+n:]
		return s
	}
	var label, group string
	var gseq uint64
	var nargs int
	var args []KV
	var members []string
	for _, row := range rows {
		switch size, field := row[0], row[1]; {
		case size == "1 + n" && strings.HasPrefix(field, "label"):
			label = str(1)
		case size == "1 + n" && strings.HasPrefix(field, "group length"):
			group = str(1)
		case size == "8" && strings.HasPrefix(field, "group seq"):
			gseq = binary.LittleEndian.Uint64(p)
			p = p[8:]
		case size == "1" && strings.HasPrefix(field, "argument count"):
			nargs = int(p[0])
			p = p[1:]
		case size == "per argument: 1 + k, 2 + v":
			for range nargs {
				k := str(1)
				args = append(args, KV{Key: k, Value: str(2)})
			}
		case size == "1, per member 1 + n" && strings.HasPrefix(field, "member count"):
			n := int(p[0])
			p = p[1:]
			for range n {
				members = append(members, str(1))
			}
		default:
			t.Fatalf("marker fields: the docs' row %q is unknown to this test", row)
		}
	}
	if label != r.Label || group != r.Group || gseq != r.GroupSeq || len(p) != 0 || len(args) != len(r.Args) ||
		(len(args) > 0 && args[0] != r.Args[0]) || strings.Join(members, ",") != strings.Join(r.Members, ",") {
		t.Errorf("marker seq %d read per the docs: label %q group %q seq %d args %v, %d bytes left; want %+v",
			r.Seq, label, group, gseq, args, len(p), r)
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("the docs' offset or size %q: %v", s, err)
	}
	return n
}

var numRe = regexp.MustCompile(`\b\d+\b`)

// leadingNumber is the number a cell starts with ("0 (a reader ...)").
func leadingNumber(s string) (uint64, bool) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	return n, err == nil
}

func numbers(s string) []uint64 {
	var out []uint64
	for _, m := range numRe.FindAllString(s, -1) {
		n, _ := strconv.ParseUint(m, 10, 64)
		out = append(out, n)
	}
	return out
}

func contains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
