package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
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

// frames concatenates encoded messages.
func frames(ms ...Msg) []byte {
	var b []byte
	for _, m := range ms {
		b = AppendMsg(b, m)
	}
	return b
}

// hasReply reports whether the frames in b, read in order up to the first
// that does not decode, hold a reply of type typ for file id.
func hasReply(b []byte, typ FrameType, id uint64) bool {
	r := bytes.NewReader(b)
	var buf []byte
	for {
		m, err := ReadMsg(r, &buf)
		if err != nil {
			return false
		}
		if m.Type == typ && m.ID == id {
			return true
		}
	}
}

// FuzzClientReplies plays a hostile server after the handshake: whatever
// bytes it sends, one Push on the client must end (no hang, no panic), may
// succeed only if an ACK for its file came, may report a refusal only if a
// NACK for it came, and the connection must close cleanly.
func FuzzClientReplies(f *testing.F) {
	ok := Msg{Type: TypeAck, ID: 1}
	f.Add(frames(Msg{Type: TypeAccept, ID: 1}, ok))
	f.Add(frames(ok))
	f.Add(frames(Msg{Type: TypeNack, ID: 1, Code: CodeBufferFull, Text: "full"}))
	f.Add(frames(Msg{Type: TypePing, ID: 3}, Msg{Type: TypeAccept, ID: 1, Offset: 4}, Msg{Type: TypePong, ID: 1}, ok))
	f.Add(frames(Msg{Type: TypeAccept, ID: 1, Offset: 1 << 40}))
	f.Add(frames(Msg{Type: TypeAccept, ID: 2}, Msg{Type: TypeAck, ID: 9}, ok, ok, ok, ok, ok, ok))
	f.Add(frames(Msg{Type: TypeNack, ID: 0, Code: CodeProtocol, Text: "bye"}))
	f.Add(frames(Msg{Type: TypeData, ID: 1, Data: []byte("x")}))
	f.Add(frames(Msg{Type: TypeHelloOK, Version: Version, Hello: Hello{Node: "dst"}}))
	f.Add([]byte{byte(TypeAccept), 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		cn, sn := net.Pipe()
		c := newClient("fuzz", Hello{Node: "dst"}, cn, cn, DialConfig{}.withDefaults())
		go c.run(c.ctx)
		go io.Copy(io.Discard, sn) // what the client sends
		go func() { sn.Write(in); sn.Close() }()
		data := []byte("0123456789")
		o := FileOffer("vol1", 1, data)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.Push(ctx, o, bytes.NewReader(data))
		if ctx.Err() != nil {
			t.Fatalf("push hung on a hostile server: %v", err)
		}
		var re *RemoteError
		switch {
		case err == nil && !hasReply(in, TypeAck, 1):
			t.Fatal("push succeeded without an ACK for its file")
		case errors.As(err, &re) && !hasReply(in, TypeNack, 1):
			t.Fatalf("push refused without a NACK for its file: %v", err)
		}
		c.Close()
		if err := c.Err(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("closed connection's error %v, want ErrUnavailable", err)
		}
	})
}

// FuzzClientHandshake plays a hostile server's answer to HELLO: the client
// must return an error or a valid hello, never panic or hang.
func FuzzClientHandshake(f *testing.F) {
	f.Add(frames(Msg{Type: TypeHelloOK, Version: Version, Hello: Hello{Node: "dst", Volumes: []string{"a"}}}))
	f.Add(frames(Msg{Type: TypeHelloOK, Version: 9, Hello: Hello{Node: "dst"}}))
	f.Add(frames(Msg{Type: TypeNack, Code: CodeVersion, Text: "only 9"}))
	f.Add(frames(Msg{Type: TypeAck, ID: 1}))
	f.Add([]byte("AIMP"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cn, sn := net.Pipe()
		defer cn.Close()
		go io.Copy(io.Discard, sn)
		go func() { sn.Write(in); sn.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, err := clientHandshake(ctx, cn, Hello{Node: "src"})
		if ctx.Err() != nil {
			t.Fatal("handshake hung on a hostile server")
		}
		if err == nil {
			if verr := validateHello(h); verr != nil {
				t.Fatalf("handshake accepted an invalid hello %+v: %v", h, verr)
			}
		}
	})
}
