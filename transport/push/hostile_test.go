package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// rawPeer speaks frames by hand, to send what a well-behaved Client never
// would.
type rawPeer struct {
	t   *testing.T
	nc  net.Conn
	buf []byte
}

// rawDial connects as a pinned client (the TLS handshake done) that then
// speaks frames by hand.
func rawDial(t *testing.T, addr string) *rawPeer {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { raw.Close() })
	nc := tls.Client(raw, clientTLSConfig())
	if err := nc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return &rawPeer{t: t, nc: nc}
}

// rawHello dials and completes a valid handshake.
func rawHello(t *testing.T, addr string) *rawPeer {
	p := rawDial(t, addr)
	p.send(Msg{Type: TypeHello, Version: Version, Hello: Hello{Node: "evil"}})
	if m := p.read(); m.Type != TypeHelloOK {
		t.Fatalf("handshake answered %s", m.Type)
	}
	return p
}

func (p *rawPeer) send(m Msg) { p.write(AppendMsg(nil, m)) }

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *rawPeer) read() Msg {
	p.t.Helper()
	m, err := ReadMsg(p.nc, &p.buf)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return m
}

// expectClosed reads a final NACK (id 0) with the wanted code, then EOF.
func (p *rawPeer) expectClosed(want Code) {
	p.t.Helper()
	m := p.read()
	if m.Type != TypeNack || m.ID != 0 || m.Code != want {
		p.t.Fatalf("got %s id %d code %s (%q), want final NACK %s", m.Type, m.ID, m.Code, m.Text, want)
	}
	if _, err := ReadMsg(p.nc, &p.buf); !errors.Is(err, io.EOF) {
		p.t.Fatalf("after final NACK: %v, want EOF", err)
	}
}

// expectNack reads a NACK for id with the wanted code.
func (p *rawPeer) expectNack(id uint64, want Code) {
	p.t.Helper()
	m := p.read()
	if m.Type != TypeNack || m.ID != id || m.Code != want {
		p.t.Fatalf("got %s id %d code %s (%q), want NACK id %d %s", m.Type, m.ID, m.Code, m.Text, id, want)
	}
}

// expectAlive checks the connection still answers a PING.
func (p *rawPeer) expectAlive() {
	p.t.Helper()
	p.send(Msg{Type: TypePing, ID: 42})
	for {
		m := p.read()
		if m.Type == TypePong && m.ID == 42 {
			return
		}
		if m.Type != TypePing {
			p.t.Fatalf("got %s while waiting for PONG", m.Type)
		}
	}
}

func TestHostileHandshake(t *testing.T) {
	var accepts atomic.Int32
	h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) { accepts.Add(1); return &fakeSink{}, nil }}
	addr := startServer(t, &Server{Handler: h, HandshakeTimeout: 2 * time.Second})
	hello := func(v uint16, node string) []byte {
		return AppendMsg(nil, Msg{Type: TypeHello, Version: v, Hello: Hello{Node: node}})
	}
	badMagic := hello(Version, "src")
	copy(badMagic[frameHeader:], "XXXX")
	tests := []struct {
		name string
		b    []byte
		want Code
	}{
		{"unknown version", hello(7, "src"), CodeVersion},
		{"bad magic", badMagic, CodeProtocol},
		{"offer before hello", AppendMsg(nil, Msg{Type: TypeOffer, ID: 1}), CodeProtocol},
		{"node name with ../", hello(Version, "../etc"), CodeProtocol},
		{"empty node name", hello(Version, ""), CodeProtocol},
		{"oversized frame", []byte{byte(TypeHello), 0xff, 0xff, 0xff, 0xff}, CodeProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rawDial(t, addr)
			p.write(tt.b)
			p.expectClosed(tt.want)
		})
	}
	// The Client reports a refused version as ErrVersion.
	t.Run("client sees version refusal", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			defer raw.Close()
			nc := tls.Server(raw, serverTLSConfig())
			var buf []byte
			ReadMsg(nc, &buf)
			nc.Write(AppendMsg(nil, Msg{Type: TypeNack, Code: CodeVersion, Text: "only version 9"}))
		}()
		_, err = Dial(context.Background(), ln.Addr().String(), Hello{Node: "src"}, clientAuth())
		if !errors.Is(err, ErrVersion) {
			t.Fatalf("Dial = %v, want ErrVersion", err)
		}
	})
	if n := accepts.Load(); n != 0 {
		t.Errorf("handler called %d times for refused peers", n)
	}
}

func TestHostileOffers(t *testing.T) {
	var accepts atomic.Int32
	h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) { accepts.Add(1); return &fakeSink{}, nil }}
	addr := startServer(t, &Server{Handler: h, MaxFileSize: 1 << 20})
	good := Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: 10}
	tests := []struct {
		name string
		mod  func(o *Offer)
	}{
		{"volume with ../", func(o *Offer) { o.Volume = "../etc" }},
		{"volume with slash", func(o *Offer) { o.Volume = "a/b" }},
		{"volume too long", func(o *Offer) { o.Volume = string(bytes.Repeat([]byte{'a'}, 65)) }},
		{"file name with ../", func(o *Offer) { o.Name = "../../etc/passwd" }},
		{"file name sequence 0", func(o *Offer) { o.Name = "0000000000000000.aimj" }},
		{"file name other suffix", func(o *Offer) { o.Name = "0000000000000001.tmp" }},
		{"name and sequence disagree", func(o *Offer) { o.Seq = 2 }},
		{"sequence 0", func(o *Offer) { o.Seq = 0 }},
		{"size over limit", func(o *Offer) { o.Size = 1<<20 + 1 }},
	}
	p := rawHello(t, addr)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.mod(&o)
			p.t = t
			p.send(Msg{Type: TypeOffer, ID: uint64(i + 1), Offer: o})
			p.expectNack(uint64(i+1), CodeBadOffer)
			p.expectAlive()
		})
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("handler called %d times for invalid offers", n)
	}
	t.Run("negative size closes", func(t *testing.T) {
		p := rawHello(t, addr)
		b := AppendMsg(nil, Msg{Type: TypeOffer, ID: 1, Offer: good})
		binary.BigEndian.PutUint64(b[len(b)-40:], 1<<63) // size field
		p.write(b)
		p.expectClosed(CodeProtocol)
	})
}

func TestHostileData(t *testing.T) {
	aborts := make(chan struct{}, 10)
	gate := make(chan struct{})
	h := &fakeHandler{accept: func(_ context.Context, _ Hello, o Offer) (Sink, error) {
		if o.Name == "0000000000000009.aimj" {
			<-gate // a slow Accept: DATA must not arrive before ACCEPT
		}
		return &fakeSink{abort: func() { aborts <- struct{}{} }}, nil
	}}
	addr := startServer(t, &Server{Handler: h})
	offer := func(p *rawPeer, id uint64, size int64) {
		p.t.Helper()
		p.send(Msg{Type: TypeOffer, ID: id, Offer: Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: size}})
		if m := p.read(); m.Type != TypeAccept || m.ID != id || m.Offset != 0 {
			p.t.Fatalf("offer %d answered %s id %d offset %d", id, m.Type, m.ID, m.Offset)
		}
	}
	tests := []struct {
		name string
		data []Msg
	}{
		{"offset gap", []Msg{{Type: TypeData, ID: 1, Offset: 5, Data: []byte("x")}}},
		{"past size", []Msg{{Type: TypeData, ID: 1, Offset: 0, Data: make([]byte, 101)}}},
		{"rewind", []Msg{{Type: TypeData, ID: 1, Offset: 0, Data: make([]byte, 50)}, {Type: TypeData, ID: 1, Offset: 0, Data: make([]byte, 50)}}},
		{"early end", []Msg{{Type: TypeData, ID: 1, Offset: 0, Data: make([]byte, 50)}, {Type: TypeEnd, ID: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rawHello(t, addr)
			offer(p, 1, 100)
			for _, m := range tt.data {
				p.send(m)
			}
			p.expectNack(1, CodeBadOffer)
			<-aborts
			p.send(Msg{Type: TypeData, ID: 1, Offset: 50, Data: []byte("late")}) // late frames are ignored
			p.expectAlive()
		})
	}
	t.Run("data before accept closes", func(t *testing.T) {
		p := rawHello(t, addr)
		p.send(Msg{Type: TypeOffer, ID: 9, Offer: Offer{Volume: "vol1", Name: "0000000000000009.aimj", Seq: 9, Size: 10}})
		p.send(Msg{Type: TypeData, ID: 9, Offset: 0, Data: []byte("0123456789")})
		p.expectClosed(CodeProtocol)
		close(gate)
		<-aborts
	})
	t.Run("reused id closes", func(t *testing.T) {
		p := rawHello(t, addr)
		offer(p, 3, 100)
		p.send(Msg{Type: TypeOffer, ID: 3, Offer: Offer{Volume: "vol1", Name: "0000000000000002.aimj", Seq: 2, Size: 10}})
		p.expectClosed(CodeProtocol)
		<-aborts
	})
	t.Run("unknown frame type closes", func(t *testing.T) {
		p := rawHello(t, addr)
		p.write([]byte{99, 0, 0, 0, 0})
		p.expectClosed(CodeProtocol)
	})
	t.Run("truncated frame", func(t *testing.T) {
		p := rawHello(t, addr)
		offer(p, 1, 100)
		b := AppendMsg(nil, Msg{Type: TypeData, ID: 1, Data: make([]byte, 50)})
		p.write(b[:len(b)-10])
		p.nc.(*tls.Conn).CloseWrite() // close_notify: the server reads EOF mid-frame
		<-aborts                      // the server gives the file up when the connection ends
		// and still serves others
		rawHello(t, addr).expectAlive()
	})
}
