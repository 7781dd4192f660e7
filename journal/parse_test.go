package journal

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	h, recs, payload := sampleFile()
	tests := []struct {
		name string
		recs []Record
	}{
		{"mixed", recs},
		{"one write", recs[:1]},
		{"no data", []Record{recs[2], recs[3], recs[4]}},
		{"markers only", []Record{recs[4], recs[5]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Re-sequence and re-place the chosen records.
			var p []byte
			rs := make([]Record, len(tt.recs))
			for i, r := range tt.recs {
				r.Seq = h.BaseSeq + uint64(i)
				if r.Kind == KindWrite {
					data := payload[r.DataOff : r.DataOff+r.Length]
					r.DataOff = int64(len(p))
					p = append(p, data...)
				}
				rs[i] = r
			}
			b := encodeRaw(h, rs, p)
			f, err := Parse(FileName(h.FileSeq), b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Header != h {
				t.Fatalf("header = %+v, want %+v", f.Header, h)
			}
			if len(f.Records) != len(rs) {
				t.Fatalf("%d records, want %d", len(f.Records), len(rs))
			}
			for i, r := range f.Records {
				if !r.Time.Equal(rs[i].Time) || r.Seq != rs[i].Seq || r.Label != rs[i].Label || len(r.Args) != len(rs[i].Args) {
					t.Fatalf("record %d = %+v, want %+v", i, r, rs[i])
				}
				if r.Kind == KindWrite && Checksum(f.Data(r)) != r.CRC {
					t.Fatalf("record %d: data does not match", i)
				}
			}
			if !bytes.Equal(f.Payload(), p) {
				t.Fatal("payload differs")
			}
			off, n, err := Layout(b)
			if err != nil || off != HeaderSize || n != int64(len(p)) {
				t.Fatalf("Layout = %d, %d, %v", off, n, err)
			}
			if f.FirstSeq() != h.BaseSeq || f.LastSeq() != h.BaseSeq+uint64(len(rs))-1 {
				t.Fatalf("seq range %d..%d", f.FirstSeq(), f.LastSeq())
			}
		})
	}
}

// TestParseEveryCut: a file cut short at any length is ErrTruncated.
func TestParseEveryCut(t *testing.T) {
	b := encodeRaw(sampleFile())
	for n := 0; n < len(b); n++ {
		_, err := Parse("cut.aimj", b[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: err = %v, want ErrTruncated", n, len(b), err)
		}
		if _, _, err := Layout(b[:n]); err == nil {
			t.Fatalf("Layout accepted a file cut at %d", n)
		}
	}
}

// TestParseEveryByteFlip: damage to any single byte is detected.
func TestParseEveryByteFlip(t *testing.T) {
	b := encodeRaw(sampleFile())
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x5a
		f, err := Parse("flip.aimj", c)
		if err == nil {
			t.Fatalf("flip at byte %d accepted: %+v", i, f.Header)
		}
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != "flip.aimj" || fe.Fault == "" {
			t.Fatalf("flip at %d: error %v is not a FormatError naming the file", i, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	h, recs, payload := sampleFile()
	valid := encodeRaw(h, recs, payload)
	mod := func(f func(rs []Record) []Record) []byte {
		rs := f(append([]Record(nil), recs...))
		return encodeRaw(h, rs, payload)
	}
	withHeader := func(f func(*Header)) []byte {
		h2 := h
		f(&h2)
		return encodeRaw(h2, recs, payload)
	}
	tests := []struct {
		name  string
		b     []byte
		want  error
		fault string
	}{
		{"empty", nil, ErrTruncated, "shorter"},
		{"text", []byte("hello, this is not a journal file at all, just some text that is long enough to fill a header of 128 bytes, really, certainly"), ErrForeign, "magic"},
		{"version 4", func() []byte { c := bytes.Clone(valid); c[8] = Version + 1; return c }(), ErrForeign, "version"},
		{"no stream id", withHeader(func(h *Header) { h.Stream = StreamID{} }), ErrCorrupt, "stream id"},
		{"unknown start kind", withHeader(func(h *Header) { h.Start = 3 }), ErrCorrupt, "start kind"},
		{"v2 reserved bytes", func() []byte {
			c := bytes.Clone(valid)
			c[150] = 1
			le.PutUint32(c[HeaderSize-4:], Checksum(c[:HeaderSize-4]))
			return reseal(c)
		}(), ErrCorrupt, "reserved"},
		{"watermark with a range", mod(func(rs []Record) []Record {
			rs[3] = Record{Kind: KindWatermark, Seq: rs[3].Seq, Time: rs[3].Time, Offset: 4096}
			return rs
		}), ErrCorrupt, "watermark"},
		{"watermark in a version 2 file", func() []byte {
			h2 := h
			h2.Version = 2
			rs := append([]Record(nil), recs...)
			rs[3] = Record{Kind: KindWatermark, Seq: rs[3].Seq, Time: rs[3].Time}
			return encodeRaw(h2, rs, payload)
		}(), ErrCorrupt, "watermark"},
		{"members unsorted", mod(func(rs []Record) []Record { rs[5].Members = []string{"vol-2", "vol-1"}; return rs }), ErrCorrupt, "sorted"},
		{"members repeated", mod(func(rs []Record) []Record { rs[5].Members = []string{"vol-1", "vol-1"}; return rs }), ErrCorrupt, "sorted"},
		{"members leave out the volume", mod(func(rs []Record) []Record { rs[5].Members = []string{"vol-2", "vol-3"}; return rs }), ErrCorrupt, "leave out"},
		{"members without a group", mod(func(rs []Record) []Record { rs[4].Members = []string{"vol-1"}; return rs }), ErrCorrupt, "without a group"},
		{"NUL in an argument", mod(func(rs []Record) []Record {
			rs[5].Args = []KV{{"db", "ord\x00ers"}, {"lsn", "12345"}}
			return rs
		}), ErrCorrupt, "control character"},
		{"newline in an argument", mod(func(rs []Record) []Record {
			rs[5].Args = []KV{{"db", "a\nb"}, {"lsn", "12345"}}
			return rs
		}), ErrCorrupt, "control character"},
		{"header only", valid[:HeaderSize], ErrTruncated, "shorter"},
		{"unsealed", valid[:len(valid)-FooterSize], ErrTruncated, "footer"},
		{"trailing garbage", append(bytes.Clone(valid), 0), ErrTruncated, "footer"},
		{"sha mismatch", func() []byte { c := bytes.Clone(valid); c[HeaderSize+10] ^= 1; return c }(), ErrCorrupt, "SHA-256"},
		{"data crc", reseal(func() []byte { c := bytes.Clone(valid); c[HeaderSize+10] ^= 1; return c }()), ErrCorrupt, "CRC32C"},
		{"seq gap", mod(func(rs []Record) []Record { rs[3].Seq += 1; return rs }), ErrCorrupt, "consecutive"},
		{"seq repeated", mod(func(rs []Record) []Record { rs[3].Seq = rs[2].Seq; return rs }), ErrCorrupt, "consecutive"},
		{"overlapping data", mod(func(rs []Record) []Record { rs[1].DataOff = 100; return rs }), ErrCorrupt, "back to back"},
		{"data past payload", mod(func(rs []Record) []Record { rs[6].Length = 600; return rs }), ErrCorrupt, "outside volume"},
		{"data past region", mod(func(rs []Record) []Record { rs[1].Length = 1200; rs[1].Offset = 0; return rs }), ErrCorrupt, ""},
		{"outside volume", mod(func(rs []Record) []Record { rs[0].Offset = 1 << 20; return rs }), ErrCorrupt, "outside volume"},
		{"negative offset", mod(func(rs []Record) []Record { rs[2].Offset = -1; return rs }), ErrCorrupt, "outside volume"},
		{"unknown kind", mod(func(rs []Record) []Record { rs[2].Kind = 9; return rs }), ErrCorrupt, "unknown kind"},
		{"marker with offset", mod(func(rs []Record) []Record { rs[4].Offset = 4096; return rs }), ErrCorrupt, "marker"},
		{"bad label", mod(func(rs []Record) []Record { rs[4].Label = "a.b"; return rs }), ErrCorrupt, "label"},
		{"group without seq", mod(func(rs []Record) []Record { rs[5].GroupSeq = 0; return rs }), ErrCorrupt, "group"},
		{"args on snapshot", mod(func(rs []Record) []Record { rs[4].Args = []KV{{"a", "b"}}; return rs }), ErrCorrupt, "snapshot"},
		{"base seq mismatch", withHeader(func(h *Header) { h.BaseSeq++ }), ErrCorrupt, "base seq"},
		{"bad volume name", withHeader(func(h *Header) { h.Volume = "../x" }), ErrCorrupt, "volume name"},
		{"zero volume size", withHeader(func(h *Header) { h.VolumeSize = 0 }), ErrCorrupt, "positive"},
		{"name mismatch", withHeader(func(h *Header) { h.FileSeq = 8 }), ErrCorrupt, "name says"},
		{"header crc", func() []byte { c := bytes.Clone(valid); c[20] ^= 1; return c }(), ErrCorrupt, "header CRC"},
		{"footer crc", func() []byte { c := bytes.Clone(valid); c[len(c)-FooterSize+50] ^= 1; return c }(), ErrCorrupt, "footer CRC"},
		{"huge record count", func() []byte {
			c := bytes.Clone(valid)
			le.PutUint32(c[len(c)-FooterSize+48:], 1<<31)
			return reseal(c)
		}(), ErrCorrupt, "record count"},
		{"payload length past file", func() []byte {
			c := bytes.Clone(valid)
			le.PutUint64(c[len(c)-FooterSize+24:], 1<<62)
			return reseal(c)
		}(), ErrCorrupt, "payload length"},
		{"no records", encodeRaw(h, nil, nil), ErrCorrupt, "record count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(FileName(h.FileSeq), tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), FileName(h.FileSeq)) || !strings.Contains(err.Error(), tt.fault) {
				t.Fatalf("err = %q, want it to name the file and %q", err, tt.fault)
			}
		})
	}
}

func TestParseExpect(t *testing.T) {
	b := encodeRaw(sampleFile())
	if _, err := ParseExpect("x", b, "vol-1"); err != nil {
		t.Fatal(err)
	}
	_, err := ParseExpect("x", b, "vol-2")
	var fe *FormatError
	if !errors.Is(err, ErrWrongVolume) || !errors.As(err, &fe) || fe.File != "x" {
		t.Fatalf("err = %v, want a FormatError wrapping ErrWrongVolume", err)
	}
	if _, err := ParseExpect("x", b[:100], "vol-1"); !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
}

func TestDataOfForeignRecord(t *testing.T) {
	f, err := Parse("x", encodeRaw(sampleFile()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record{
		{Kind: KindWrite, DataOff: -1, Length: 5},
		{Kind: KindWrite, DataOff: 0, Length: 1 << 40},
		{Kind: KindWrite, DataOff: 1 << 62, Length: 1 << 62},
		{Kind: KindZero, Length: 10},
	} {
		if d := f.Data(r); d != nil {
			t.Fatalf("Data(%+v) = %d bytes, want nil", r, len(d))
		}
	}
}

// TestParseBoundedAllocation: length fields cannot make Parse allocate more
// than a small multiple of its input.
func TestParseBoundedAllocation(t *testing.T) {
	h, recs, payload := sampleFile()
	valid := encodeRaw(h, recs, payload)
	huge := bytes.Clone(valid)
	le.PutUint32(huge[len(huge)-FooterSize+48:], MaxRecords) // record count
	inputs := map[string][]byte{"valid": valid, "huge count": reseal(huge)}
	for name, b := range seedFiles() {
		inputs[name] = b
	}
	for name, b := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		Parse("x", b)
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*len(b)+16<<10); got > limit {
			t.Fatalf("%s: Parse of %d bytes allocated %d bytes (limit %d)", name, len(b), got, limit)
		}
	}
}
