package dedupe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// streamHeader builds the fixed part of a stream by hand.
func streamHeader(p Params, size int, check uint32) []byte {
	p = p.withDefaults()
	b := appendHeader(nil, magicStream)
	b = binary.BigEndian.AppendUint64(b, p.Hash())
	b = binary.AppendUvarint(b, uint64(size))
	return binary.BigEndian.AppendUint32(b, check)
}

func newDecoder(t testing.TB) *Decoder {
	t.Helper()
	st, err := OpenStore(StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(DecoderConfig{Store: st, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecodeHostile(t *testing.T) {
	var fp Fingerprint
	bomb := func() []byte {
		z, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
		return z.EncodeAll(make([]byte, 64<<20), nil)
	}()
	lit := func(n int, z []byte) []byte {
		b := streamHeader(Params{}, n, 0)
		b = binary.AppendUvarint(b, 1)
		b = append(b, opLiteral)
		b = binary.AppendUvarint(b, uint64(n))
		b = append(b, 0) // no bases
		b = binary.AppendUvarint(b, uint64(len(z)))
		return append(b, z...)
	}
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty", nil, ErrCorrupt},
		{"bad magic", []byte("NOPE\x01"), ErrCorrupt},
		{"bad version", append(magicStream[:], 9), ErrCorrupt},
		{"other params", streamHeader(Params{AvgSize: 1 << 10}, 0, 0), ErrMismatch},
		{"payload above limit", streamHeader(Params{}, 1<<40, 0), ErrTooLarge},
		{"huge varint", append(streamHeader(Params{}, 0, 0)[:13], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), ErrCorrupt},
		{"op count above payload", append(streamHeader(Params{}, 10, 0), 0xff, 0xff, 0x03), ErrCorrupt},
		{"bad op", append(streamHeader(Params{}, 10, 0), 1, 0x7f, 10, 0), ErrCorrupt},
		{"literal above max chunk", append(binary.AppendUvarint(append(streamHeader(Params{}, 1<<20, 0), 1, opLiteral), 1<<20), 0), ErrCorrupt},
		{"ops short of payload", append(streamHeader(Params{}, 10, 0), 1, opZero, 5, 0), ErrCorrupt},
		{"ops past payload", append(streamHeader(Params{}, 10, 0), 2, opZero, 5, opZero, 6, 0), ErrCorrupt},
		{"empty op", append(streamHeader(Params{}, 10, 0), 2, opZero, 0, opZero, 10, 0), ErrCorrupt},
		{"run count huge", append(binary.AppendUvarint(append(streamHeader(Params{}, 10, 0), 1, opRun), 1<<40), 10), ErrCorrupt},
		{"run of one", append(append(append(streamHeader(Params{}, 10, 0), 1, opRun, 1, 10), fp[:]...), make([]byte, 17)...), ErrCorrupt},
		{"truncated fingerprint", append(streamHeader(Params{}, 10, 0), 1, opRef, 10, 1, 2, 3), ErrCorrupt},
		{"literal stream missing", append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 0, 0), ErrCorrupt},
		{"literal stream garbage", append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 0, 3, 1, 2, 3), ErrCorrupt},
		{"literal stream length past end", append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 0, 100, 1), ErrCorrupt},
		{"too many bases", append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 0xff, 0x7f), ErrCorrupt},
		{"bases truncated", append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 2, 1, 2, 3), ErrCorrupt},
		{"base entry of no chunks", append(append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 1, 0), fp[:]...), ErrCorrupt},
		{"base runs above the limit", append(append(append(append(binary.AppendUvarint(append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 2), MaxBases), fp[:]...), make([]byte, runCheckLen)...), 1), fp[:]...), ErrCorrupt},
		{"base run check truncated", append(append(streamHeader(Params{}, 10, 0), 1, opLiteral, 10, 1, 2), fp[:]...), ErrCorrupt},
		{"trailing bytes", append(streamHeader(Params{}, 10, 0), 1, opZero, 10, 0, 0, 0), ErrCorrupt},
		{"decompression bomb", lit(1000, bomb), ErrCorrupt},
		{"literal stream short", lit(1000, func() []byte {
			z, _ := zstd.NewWriter(nil)
			return z.EncodeAll(make([]byte, 999), nil)
		}()), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(t)
			_, err := d.Decode(tt.stream)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeTruncatedEverywhere(t *testing.T) {
	g := newImageGen(5)
	payload := g.template(1 << 20)
	e, _ := NewEncoder(EncoderConfig{})
	first, _, _ := e.Encode(nil, payload[:600000])
	stream, _, err := e.Encode(nil, payload) // literals, runs and zero runs
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(t)
	if _, err := d.Decode(first); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(stream); n += 1 + n/50 {
		if _, err := d.Decode(stream[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix %d of %d: %v, want ErrCorrupt", n, len(stream), err)
		}
	}
}

func TestReferenceNeverSent(t *testing.T) {
	payload := bytes.Repeat([]byte("abcdefgh"), 2000)
	fp := Sum(payload)
	b := streamHeader(Params{}, len(payload), PayloadCheck(payload))
	b = append(b, 1, opRef)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, fp[:]...)
	b = append(b, 0, 0) // no bases, no literals
	d := newDecoder(t)
	p, err := d.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Complete() {
		t.Fatal("a reference to an unknown chunk resolved")
	}
	if _, err := p.Payload(); !errors.Is(err, ErrPending) {
		t.Fatalf("Payload before Resolve: %v, want ErrPending", err)
	}
	ms := p.Misses()
	if len(ms) != 1 || ms[0].Offset != 0 || ms[0].Length != len(payload) || ms[0].Fingerprint != fp {
		t.Fatalf("misses %+v", ms)
	}
	e, _ := NewEncoder(EncoderConfig{})
	// An answer built from other bytes does not match the reference.
	other := bytes.Repeat([]byte("ABCDEFGH"), 2000)
	bad, err := e.Answer(nil, other, p.AppendMissList(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resolve(bad); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Resolve with a wrong answer: %v, want ErrMismatch", err)
	}
	good, err := e.Answer(nil, payload, p.AppendMissList(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resolve(good); err != nil {
		t.Fatal(err)
	}
	got, err := p.Payload()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("payload after Resolve: %v", err)
	}
}

func TestMissListHostile(t *testing.T) {
	ml := func(size int, ranges ...int) []byte {
		b := appendHeader(nil, magicMisses)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.AppendUvarint(b, uint64(size))
		b = binary.AppendUvarint(b, uint64(len(ranges)/2))
		for _, r := range ranges {
			b = binary.AppendUvarint(b, uint64(r))
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"other payload", ml(99), ErrMismatch},
		{"past end", ml(100, 50, 51), ErrCorrupt},
		{"gap past end", ml(100, 101, 1), ErrCorrupt},
		{"empty range", ml(100, 10, 0), ErrCorrupt},
		{"count too big", append(ml(100)[:len(ml(100))-1], 0xff, 0x7f), ErrCorrupt},
		{"truncated", ml(100, 10, 10)[:15], ErrCorrupt},
	}
	e, _ := NewEncoder(EncoderConfig{})
	payload := make([]byte, 100)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.Answer(nil, payload, tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Answer: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStreamSize(t *testing.T) {
	e, _ := NewEncoder(EncoderConfig{})
	payload := newImageGen(16).template(1 << 20)
	s, _, err := e.Encode(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(t)
	n, err := d.StreamSize(append(append([]byte(nil), s...), "next message"...))
	if err != nil || n != len(s) {
		t.Fatalf("StreamSize = %d, %v; want %d", n, err, len(s))
	}
	if _, err := d.StreamSize(s[:len(s)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}
