package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// hostileDest is a destination edge that only receives (no network).
func hostileDest(t *testing.T) *Dest {
	t.Helper()
	store, err := dedupe.OpenStore(dedupe.StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDest(DestConfig{Push: "127.0.0.1:1", Identity: lanID(lanSrc), LANPins: lanPins(lanDst), Store: store, MaxFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fileStream is the WAN stream of a journal file (all literals, no
// references) in mode, with a correct SHA-256.
func fileStream(t *testing.T, mode Mode, file []byte) []byte {
	t.Helper()
	meta, payload, err := journal.Split(file)
	if err != nil {
		t.Fatal(err)
	}
	hdr := FileHeader{Volume: "v", Name: "0000000000000001.aimj", Seq: 1, Size: int64(len(file)), Mode: mode,
		PayloadOff: journal.HeaderSize, PayloadLen: int64(len(payload)), SHA256: sha256.Sum256(file)}
	var blob []byte
	if mode == ModeOptimize {
		enc, err := dedupe.NewEncoder(dedupe.EncoderConfig{})
		if err != nil {
			t.Fatal(err)
		}
		stream, _, err := enc.Encode(nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		zmeta := zstdEncoder.EncodeAll(meta, nil)
		hdr.MetaLen, hdr.StreamLen = int64(len(zmeta)), int64(len(stream))
		blob = append(zmeta, stream...)
	} else {
		hdr.PayloadOff, hdr.PayloadLen, hdr.StreamLen = 0, int64(len(file)), int64(len(file))
		blob = file
	}
	var w bytes.Buffer
	writeFrame(&w, TypeFile, hdr.encode())
	writeBlob(&w, TypeData, blob)
	return w.Bytes()
}

// TestReceiveTruncatedEverywhere: a file stream cut at any byte is an
// error at the destination edge (never a file, never a panic); the whole
// stream gives back the exact file.
func TestReceiveTruncatedEverywhere(t *testing.T) {
	d := hostileDest(t)
	want := makeJournal(t, "v", [][]byte{bytes.Repeat([]byte("0123456789abcdef"), 700)})[0].data
	for _, mode := range []Mode{ModeOptimize, ModePassthrough} {
		t.Run(mode.String(), func(t *testing.T) {
			full := fileStream(t, mode, want)
			_, file, err := d.receive(bytes.NewReader(full), io.Discard)
			if err != nil {
				t.Fatalf("whole stream: %v", err)
			}
			if !bytes.Equal(file, want) {
				t.Fatal("whole stream rebuilt a different file")
			}
			for cut := 0; cut < len(full); cut++ {
				if _, _, err := d.receive(bytes.NewReader(full[:cut]), io.Discard); err == nil {
					t.Fatalf("stream cut at %d of %d bytes accepted", cut, len(full))
				}
			}
		})
	}
}

// TestReadFrameOversizedLength: a frame header announcing more than MaxBody
// is refused before anything is allocated for it.
func TestReadFrameOversizedLength(t *testing.T) {
	for _, n := range []uint32{MaxBody + 1, 1 << 31, 0xffffffff} {
		h := []byte{TypeFile, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(h[1:], n)
		var buf []byte
		before := allocated()
		_, _, err := readFrame(bytes.NewReader(h), &buf)
		if !errors.Is(err, ErrFrame) {
			t.Errorf("length %d: %v, want ErrFrame", n, err)
		}
		if grew := allocated() - before; grew > 1<<20 {
			t.Errorf("length %d: %d bytes allocated", n, grew)
		}
	}
}

// TestDecodeMessagesTruncated: every strict prefix of a valid HELLO, FILE,
// RESULT and REFUSE body is an error, and trailing bytes are too.
func TestDecodeMessagesTruncated(t *testing.T) {
	bodies := map[string]struct {
		b      []byte
		decode func([]byte) error
	}{
		"hello": {WANHello{Version: 1, Mode: ModeOptimize, Node: "node-1", Params: "p", Epoch: 7, Held: 3}.encode(true),
			func(b []byte) error { _, err := DecodeWANHello(b); return err }},
		"file": {FileHeader{Volume: "v", Name: "0000000000000001.aimj", Size: 100, Mode: ModePassthrough, PayloadLen: 100, StreamLen: 100}.encode(),
			func(b []byte) error { _, err := DecodeFileHeader(b); return err }},
		"result": {Result{Code: 3, Msg: "buffer full"}.encode(),
			func(b []byte) error { _, err := DecodeResult(b); return err }},
		"refuse": {encodeRefuse("unknown fingerprint"),
			func(b []byte) error { _, err := DecodeRefuse(b); return err }},
	}
	for name, m := range bodies {
		t.Run(name, func(t *testing.T) {
			if err := m.decode(m.b); err != nil {
				t.Fatalf("valid body: %v", err)
			}
			for cut := 0; cut < len(m.b); cut++ {
				if err := m.decode(m.b[:cut]); !errors.Is(err, ErrFrame) {
					t.Fatalf("body cut at %d of %d: %v, want ErrFrame", cut, len(m.b), err)
				}
			}
			if err := m.decode(append(bytes.Clone(m.b), 0)); !errors.Is(err, ErrFrame) {
				t.Errorf("trailing byte: %v, want ErrFrame", err)
			}
		})
	}
}

// TestFileHeaderLiesAboutSizes: a header announcing metadata and stream far
// larger than the file is refused before its data is read.
func TestFileHeaderLiesAboutSizes(t *testing.T) {
	d := hostileDest(t)
	hdr := FileHeader{Volume: "v", Name: "0000000000000001.aimj", Size: 1000, Mode: ModeOptimize, PayloadLen: 900,
		PayloadOff: 100, MetaLen: 1 << 40, StreamLen: 10}
	var w bytes.Buffer
	writeFrame(&w, TypeFile, hdr.encode())
	if _, _, err := d.receive(&w, io.Discard); err == nil {
		t.Fatal("accepted a header announcing 1 TiB of metadata for a 1000-byte file")
	}
}

// TestMetadataDecompressionBomb: an optimized file whose metadata is a small
// zstd frame expanding to 256 MiB is refused without decompressing it all
// (the file is 1 KiB: its metadata cannot be larger).
func TestMetadataDecompressionBomb(t *testing.T) {
	d := hostileDest(t)
	bomb := zstdEncoder.EncodeAll(make([]byte, 256<<20), nil)
	payload := bytes.Repeat([]byte{1}, 1000)
	hdr := FileHeader{Volume: "v", Name: "0000000000000001.aimj", Size: 1024, Mode: ModeOptimize, PayloadOff: 24,
		PayloadLen: 1000, MetaLen: int64(len(bomb))}
	enc, err := dedupe.NewEncoder(dedupe.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stream, _, err := enc.Encode(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	hdr.StreamLen = int64(len(stream))
	if hdr.MetaLen+hdr.StreamLen > streamLimit(hdr.Size) {
		t.Fatalf("bomb of %d bytes does not fit the stream limit; make it smaller", len(bomb))
	}
	var w bytes.Buffer
	writeFrame(&w, TypeFile, hdr.encode())
	writeBlob(&w, TypeData, append(bomb, stream...))
	before := allocated()
	if _, _, err := d.receive(&w, io.Discard); err == nil {
		t.Fatal("a metadata bomb was accepted")
	}
	if grew := allocated() - before; grew > 64<<20 {
		t.Errorf("receiving a 1 KiB file with a metadata bomb allocated %d MiB", grew>>20)
	}
}

// allocated is the bytes allocated so far by the process.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// TestDestMemoryBudget: the destination edge books each file's encoded
// data and rebuilt bytes from its FILE frame until dst's verdict; a file
// that would pass the budget is answered buffer-full (a verdict: the source
// keeps it), except when nothing else is held; the booking ends with the
// file, whatever happened to it.
func TestDestMemoryBudget(t *testing.T) {
	store, err := dedupe.OpenStore(dedupe.StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	file := makeJournal(t, "v", [][]byte{bytes.Repeat([]byte("0123456789abcdef"), 4000)})[0].data
	stream := fileStream(t, ModePassthrough, file)
	cost := 3 * int64(len(file)) / 2 // budget: one file fits, two do not
	d, err := NewDest(DestConfig{Push: "127.0.0.1:1", Identity: lanID(lanSrc), LANPins: lanPins(lanDst), Store: store, MaxFileSize: 1 << 20, MaxMemory: cost})
	if err != nil {
		t.Fatal(err)
	}
	hdr, _, err := d.receiveArriving(t.Context(), bytes.NewReader(stream), io.Discard, d.arriving.begin()) // held, as while pushing to dst
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.receive(bytes.NewReader(stream), io.Discard); !errors.Is(err, push.ErrBufferFull) {
		t.Fatalf("second file within a full budget: %v, want buffer full", err)
	}
	d.mem.Add(-fileCost(hdr)) // dst's verdict came back
	if _, _, err := d.receive(bytes.NewReader(stream), io.Discard); err != nil {
		t.Fatalf("after the first file was released: %v", err)
	}
	// Alone, a file bigger than the budget still goes through.
	small, err := NewDest(DestConfig{Push: "127.0.0.1:1", Identity: lanID(lanSrc), LANPins: lanPins(lanDst), Store: store, MaxFileSize: 1 << 20, MaxMemory: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := small.receive(bytes.NewReader(stream), io.Discard); err != nil {
		t.Fatalf("one file over the budget with nothing held: %v", err)
	}
	if _, _, err := small.receive(bytes.NewReader(stream[:len(stream)/2]), io.Discard); err == nil || small.mem.Load() != 0 {
		t.Fatalf("cut stream: %v, %d bytes still booked", err, small.mem.Load())
	}
}
