package nbd

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// testClient is a minimal NBD client for tests and the benchmark: raw
// handshake steps and simple requests.
type testClient struct {
	t     testing.TB
	nc    net.Conn
	size  uint64
	flags uint16
}

func tdial(t testing.TB, addr string) *testClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &testClient{t: t, nc: nc}
}

// greet reads the server greeting and sends client flags.
func (c *testClient) greet(clientFlags uint32) {
	c.t.Helper()
	var g [18]byte
	c.readFull(g[:])
	if binary.BigEndian.Uint64(g[:]) != nbdMagic || binary.BigEndian.Uint64(g[8:]) != optMagic {
		c.t.Fatalf("bad greeting % x", g)
	}
	if f := binary.BigEndian.Uint16(g[16:]); f != flagFixedNewstyle|flagNoZeroes {
		c.t.Fatalf("handshake flags %#x", f)
	}
	c.write(binary.BigEndian.AppendUint32(nil, clientFlags))
}

func (c *testClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *testClient) readFull(b []byte) {
	c.t.Helper()
	if _, err := io.ReadFull(c.nc, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
}

// option sends one option.
func (c *testClient) option(code uint32, data []byte) {
	b := binary.BigEndian.AppendUint64(nil, optMagic)
	b = binary.BigEndian.AppendUint32(b, code)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	c.write(append(b, data...))
}

// optReply reads one option reply.
func (c *testClient) optReply(code uint32) (uint32, []byte) {
	c.t.Helper()
	var h [20]byte
	c.readFull(h[:])
	if binary.BigEndian.Uint64(h[:]) != optReplyMagic || binary.BigEndian.Uint32(h[8:]) != code {
		c.t.Fatalf("bad option reply header % x", h)
	}
	d := make([]byte, binary.BigEndian.Uint32(h[16:]))
	c.readFull(d)
	return binary.BigEndian.Uint32(h[12:]), d
}

func infoData(name string) []byte {
	d := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	d = append(d, name...)
	return binary.BigEndian.AppendUint16(d, 0)
}

// goExport sends NBD_OPT_GO; it returns the final reply type (repAck on
// success, after reading size and flags).
func (c *testClient) goExport(name string) uint32 {
	c.t.Helper()
	c.option(optGo, infoData(name))
	for {
		typ, d := c.optReply(optGo)
		switch {
		case typ == repInfo && binary.BigEndian.Uint16(d) == infoExport:
			c.size, c.flags = binary.BigEndian.Uint64(d[2:]), binary.BigEndian.Uint16(d[10:])
		case typ == repInfo:
		default:
			return typ
		}
	}
}

// connect performs the whole handshake for an export.
func connect(t testing.TB, addr, name string) *testClient {
	t.Helper()
	c := tdial(t, addr)
	c.greet(clientFixedNewstyl | clientNoZeroes)
	if typ := c.goExport(name); typ != repAck {
		t.Fatalf("NBD_OPT_GO %q: reply %#x", name, typ)
	}
	return c
}

// request sends one request header (and payload for writes).
func (c *testClient) request(typ, flags uint16, cookie, off uint64, length uint32, payload []byte) {
	c.t.Helper()
	b := make([]byte, requestHdrSize)
	binary.BigEndian.PutUint32(b, requestMagic)
	binary.BigEndian.PutUint16(b[4:], flags)
	binary.BigEndian.PutUint16(b[6:], typ)
	binary.BigEndian.PutUint64(b[8:], cookie)
	binary.BigEndian.PutUint64(b[16:], off)
	binary.BigEndian.PutUint32(b[24:], length)
	bufs := net.Buffers{b, payload}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.t.Fatalf("write request: %v", err)
	}
}

// reply reads one simple reply header: cookie and errno.
func (c *testClient) reply() (uint64, uint32) {
	c.t.Helper()
	var h [replyHdrSize]byte
	c.readFull(h[:])
	if binary.BigEndian.Uint32(h[:]) != simpleReplyMag {
		c.t.Fatalf("bad reply magic % x", h)
	}
	return binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[4:])
}

// do sends a request and waits for its reply; READ data is returned.
func (c *testClient) do(typ, flags uint16, off uint64, length uint32, payload []byte) (uint32, []byte) {
	c.t.Helper()
	c.request(typ, flags, 77, off, length, payload)
	cookie, errno := c.reply()
	if cookie != 77 {
		c.t.Fatalf("reply cookie %d, want 77", cookie)
	}
	var data []byte
	if typ == cmdRead && errno == 0 {
		data = make([]byte, length)
		c.readFull(data)
	}
	return errno, data
}

// expectEOF checks the server closed the connection.
func (c *testClient) expectEOF() {
	c.t.Helper()
	var b [1]byte
	if n, err := c.nc.Read(b[:]); err == nil {
		c.t.Fatalf("connection still open: read %d bytes", n)
	}
}
