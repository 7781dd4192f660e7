package proxy

import (
	"bytes"
	"errors"
	"github.com/aimwan/aimwan/transport"
	"io"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/transport/push"
)

func TestMessagesRoundTrip(t *testing.T) {
	h := WANHello{Version: Version, Mode: ModeOptimize, Node: "edge-a", Params: "rabin/8192", Epoch: 42, Held: 7}
	if got, err := DecodeWANHello(h.encode(true)); err != nil || got != h {
		t.Errorf("hello round trip: %+v %v", got, err)
	}
	f := FileHeader{Volume: "vol", Name: "0000000000000001.aimj", Size: 100, Mode: ModeOptimize,
		PayloadOff: 10, PayloadLen: 50, MetaLen: 20, StreamLen: 30, AnyOrder: true}
	f.SHA256[3] = 9
	if got, err := DecodeFileHeader(f.encode()); err != nil || got != f {
		t.Errorf("file header round trip: %+v %v", got, err)
	}
	r := Result{Code: uint16(push.CodeBufferFull), Msg: "full"}
	if got, err := DecodeResult(r.encode()); err != nil || got != r {
		t.Errorf("result round trip: %+v %v", got, err)
	}
}

func TestFileHeaderRejects(t *testing.T) {
	good := FileHeader{Volume: "v", Name: "n", Size: 100, Mode: ModePassthrough, PayloadLen: 100, StreamLen: 100}
	for name, mut := range map[string]func(*FileHeader){
		"payload beyond size":        func(f *FileHeader) { f.PayloadOff = 60 },
		"unknown mode":               func(f *FileHeader) { f.Mode = 9 },
		"pass-through with metadata": func(f *FileHeader) { f.MetaLen = 3 },
		"no volume":                  func(f *FileHeader) { f.Volume = "" },
	} {
		t.Run(name, func(t *testing.T) {
			f := good
			mut(&f)
			if _, err := DecodeFileHeader(f.encode()); !errors.Is(err, ErrFrame) {
				t.Errorf("accepted: %v", err)
			}
		})
	}
	// A flag this version does not define is refused, not ignored.
	b := good.encode()
	b[len(b)-1] = 0x80
	if _, err := DecodeFileHeader(b); !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), "flags") {
		t.Errorf("unknown flag accepted: %v", err)
	}
}

func TestBlobPieces(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), MaxPiece/4) // 2.5 pieces
	for _, b := range [][]byte{nil, []byte("x"), big} {
		var w bytes.Buffer
		if _, err := writeBlob(&w, TypeData, b); err != nil {
			t.Fatal(err)
		}
		var buf []byte
		got, err := readBlob(&w, &buf, TypeData, int64(len(b)), nil)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob of %d bytes: got %d bytes, %v", len(b), len(got), err)
		}
	}
	var w bytes.Buffer
	writeBlob(&w, TypeData, big)
	var buf []byte
	if _, err := readBlob(&w, &buf, TypeData, 100, nil); !errors.Is(err, ErrFrame) {
		t.Errorf("blob above its limit: %v", err)
	}
}

// fuzzDest is a destination edge for FuzzFrame (no network: receive only).
func fuzzDest(f *testing.F) *Dest {
	store, err := dedupe.OpenStore(dedupe.StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		f.Fatal(err)
	}
	d, err := NewDest(DestConfig{Push: "127.0.0.1:1", Identity: lanID(lanSrc), LANPins: lanPins(lanDst), Store: store, MaxFileSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	return d
}

// validStream is the file stream of a small optimized file.
func validStream(f *testing.F, file []byte) []byte {
	enc, err := dedupe.NewEncoder(dedupe.EncoderConfig{})
	if err != nil {
		f.Fatal(err)
	}
	stream, _, err := enc.Encode(nil, file)
	if err != nil {
		f.Fatal(err)
	}
	var w bytes.Buffer
	hdr := FileHeader{Volume: "v", Name: "n", Size: int64(len(file)), Mode: ModeOptimize, PayloadLen: int64(len(file)),
		MetaLen: int64(len(zstdEncoder.EncodeAll(nil, nil))), StreamLen: int64(len(stream))}
	writeFrame(&w, TypeFile, hdr.encode())
	writeBlob(&w, TypeData, append(zstdEncoder.EncodeAll(nil, nil), stream...))
	return w.Bytes()
}

// FuzzFrame feeds arbitrary bytes to the frame reader, every message decoder
// and the destination edge's file receiver: none may panic or hang.
func FuzzFrame(f *testing.F) {
	var w bytes.Buffer
	writeFrame(&w, TypeHello, WANHello{Version: 1, Mode: ModeOptimize, Node: "n", Params: "p"}.encode(true))
	writeFrame(&w, TypeResult, Result{Code: 3, Msg: "full"}.encode())
	f.Add(w.Bytes())
	f.Add(validStream(f, bytes.Repeat([]byte("abcdefgh"), 2000)))
	w.Reset()
	writeFrame(&w, TypeFile, FileHeader{Volume: "v", Name: "n", Size: 100, Mode: ModePassthrough, PayloadLen: 100, StreamLen: 100}.encode())
	writeFrame(&w, TypeStriped, Striped{ID: transport.TransferID{1, 2, 3}, Size: 100, PartSize: 32 << 10}.encode())
	f.Add(w.Bytes())
	d := fuzzDest(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf []byte
		r := bytes.NewReader(data)
		for range 64 {
			typ, body, err := readFrame(r, &buf)
			if err != nil {
				break
			}
			switch typ {
			case TypeHello, TypeHelloOK:
				if h, err := DecodeWANHello(body); err == nil {
					if _, err := DecodeWANHello(h.encode(true)); err != nil {
						t.Fatalf("re-encoded hello fails: %v", err)
					}
				}
			case TypeFile:
				if h, err := DecodeFileHeader(body); err == nil {
					if again, err := DecodeFileHeader(h.encode()); err != nil || again != h {
						t.Fatalf("re-encoded file header: %+v %v", again, err)
					}
				}
			case TypeStriped:
				if sp, err := DecodeStriped(body); err == nil {
					if again, err := DecodeStriped(sp.encode()); err != nil || again != sp {
						t.Fatalf("re-encoded STRIPED: %+v %v", again, err)
					}
				}
			case TypeResult:
				_, _ = DecodeResult(body)
			case TypeRefuse:
				_, _ = DecodeRefuse(body)
			}
		}
		_, _, _ = d.receive(bytes.NewReader(data), io.Discard)
	})
}
