package push

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the frame reader and decoder: they
// must never panic, every error must be a clean one, and every frame that
// decodes must re-encode to a frame that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		f.Add(AppendMsg(nil, m))
	}
	f.Add([]byte{byte(TypeData), 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		for range 64 {
			m, err := ReadMsg(r, &buf)
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			again, err := Decode(m.Type, AppendMsg(nil, m)[frameHeader:])
			if err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", m.Type, err)
			}
			if !sameMsg(m, again) {
				t.Fatalf("round trip changed %s:\n%+v\n%+v", m.Type, m, again)
			}
		}
	})
}

// sameMsg compares messages, treating nil and empty slices alike.
func sameMsg(a, b Msg) bool {
	if len(a.Data) == 0 && len(b.Data) == 0 {
		a.Data, b.Data = nil, nil
	}
	if len(a.Sums) == 0 && len(b.Sums) == 0 {
		a.Sums, b.Sums = nil, nil
	}
	if len(a.Hello.Volumes) == 0 && len(b.Hello.Volumes) == 0 {
		a.Hello.Volumes, b.Hello.Volumes = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// sampleMsgs is one message of every type (the seed corpus).
func sampleMsgs() []Msg {
	return []Msg{
		{Type: TypeHello, Version: Version, Hello: Hello{Node: "src", Volumes: []string{"vol1", "vol2"}}},
		{Type: TypeHelloOK, Version: Version, Hello: Hello{Node: "dst"}},
		{Type: TypeOffer, ID: 1, Offer: Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: 4096, SHA256: [32]byte{1, 2, 3}}},
		{Type: TypeAccept, ID: 1, Offset: 512},
		{Type: TypeData, ID: 1, Offset: 512, Data: []byte("payload bytes")},
		{Type: TypeEnd, ID: 1},
		{Type: TypeAck, ID: 1},
		{Type: TypeNack, ID: 1, Code: CodeBufferFull, Text: "full"},
		{Type: TypePing, ID: 7},
		{Type: TypePong, ID: 7},
		{Type: TypeCancel, ID: 1},
		{Type: TypeSum, ID: 2, Sum: SumRequest{Volume: "vol1", Stream: [16]byte{9}, End: 1 << 28, Offset: 1 << 26, Range: 1 << 16, Count: 64}},
		{Type: TypeSums, ID: 2, Sums: [][SumSize]byte{{1}, {2, 3}}},
	}
}

func TestEncodeDecodeSamples(t *testing.T) {
	for _, m := range sampleMsgs() {
		t.Run(m.Type.String(), func(t *testing.T) {
			var buf []byte
			got, err := ReadMsg(bytes.NewReader(AppendMsg(nil, m)), &buf)
			if err != nil || !sameMsg(got, m) {
				t.Fatalf("round trip: %v\n%+v\n%+v", err, got, m)
			}
		})
	}
}
