package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeServer is a scripted NBD server on one end of a net.Pipe: a test
// writes exactly the bytes a broken or hostile server would send. Its
// methods ignore I/O errors (the client may hang up first); the test checks
// the client's side.
type fakeServer struct {
	c net.Conn
	r *bufio.Reader
}

func (s *fakeServer) write(b []byte) { s.c.Write(b) }

func (s *fakeServer) read(n int) []byte {
	b := make([]byte, n)
	io.ReadFull(s.r, b)
	return b
}

// greet sends the greeting with handshake flags and reads the client flags.
func (s *fakeServer) greet(flags uint16) uint32 {
	b := binary.BigEndian.AppendUint64(nil, nbdMagic)
	b = binary.BigEndian.AppendUint64(b, optMagic)
	s.write(binary.BigEndian.AppendUint16(b, flags))
	return binary.BigEndian.Uint32(s.read(4))
}

// readOpt reads one option.
func (s *fakeServer) readOpt() (uint32, []byte) {
	h := s.read(16)
	return binary.BigEndian.Uint32(h[8:]), s.read(int(binary.BigEndian.Uint32(h[12:])))
}

func (s *fakeServer) optReply(opt, typ uint32, data []byte) {
	b := binary.BigEndian.AppendUint64(nil, optReplyMagic)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	s.write(append(b, data...))
}

func infoExportData(size uint64, flags uint16) []byte {
	d := binary.BigEndian.AppendUint16(nil, infoExport)
	d = binary.BigEndian.AppendUint64(d, size)
	return binary.BigEndian.AppendUint16(d, flags)
}

const allFlags = tfHasFlags | tfSendFlush | tfSendFUA | tfSendTrim | tfSendWriteZeroes

// goOK greets and answers NBD_OPT_GO with a 1 MiB export.
func (s *fakeServer) goOK() {
	s.greet(flagFixedNewstyle | flagNoZeroes)
	s.readOpt()
	s.optReply(optGo, repInfo, infoExportData(1<<20, allFlags))
	s.optReply(optGo, repAck, nil)
}

// readReq reads one request (and a WRITE's payload).
func (s *fakeServer) readReq() (typ uint16, cookie uint64, length uint32) {
	h := s.read(requestHdrSize)
	typ, cookie, length = binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[24:])
	if typ == cmdWrite {
		s.read(int(length))
	}
	return typ, cookie, length
}

func (s *fakeServer) reply(magic uint32, errno uint32, cookie uint64, data []byte) {
	b := binary.BigEndian.AppendUint32(nil, magic)
	b = binary.BigEndian.AppendUint32(b, errno)
	b = binary.BigEndian.AppendUint64(b, cookie)
	s.write(append(b, data...))
}

// withFake runs script as the server of a client handshake over a pipe and
// returns the client (or the handshake error). The pipe closes when the test
// ends.
func withFake(t *testing.T, d Dialer, script func(s *fakeServer)) (*Client, error) {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		script(&fakeServer{c: sc, r: bufio.NewReader(sc)})
	}()
	t.Cleanup(func() { sc.Close(); cc.Close(); <-done })
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = 5 * time.Second
	}
	if d.RequestTimeout == 0 {
		d.RequestTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Client(ctx, cc, Target{Network: "pipe", Address: "fake", Export: "v"})
}

// TestClientHostileHandshake: broken or hostile handshakes fail with an
// error that names the fault, and never a client.
func TestClientHostileHandshake(t *testing.T) {
	cases := []struct {
		name   string
		script func(s *fakeServer)
		is     error
		says   string
	}{
		{"not NBD", func(s *fakeServer) { s.write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, ErrServerProtocol, "not a newstyle"},
		{"oldstyle", func(s *fakeServer) {
			s.write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, nbdMagic), oldstyleMagic))
		}, ErrServerProtocol, "oldstyle"},
		{"closed after greeting", func(s *fakeServer) { s.greet(flagFixedNewstyle); s.c.Close() }, ErrConnection, ""},
		{"huge option reply", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optGo, repInfo, make([]byte, maxOptReplyLen+1))
		}, ErrServerProtocol, "option reply of 65537 bytes"},
		{"ack without export info", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optGo, repAck, nil)
		}, ErrServerProtocol, "without NBD_INFO_EXPORT"},
		{"short export info", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optGo, repInfo, infoExportData(1, allFlags)[:11])
		}, ErrServerProtocol, "NBD_INFO_EXPORT of 11 bytes"},
		{"size beyond int64", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optGo, repInfo, infoExportData(math.MaxUint64, allFlags))
		}, ErrServerProtocol, "export size"},
		{"bad block sizes", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			d := binary.BigEndian.AppendUint16(nil, infoBlockSize)
			d = binary.BigEndian.AppendUint32(d, 3)
			d = binary.BigEndian.AppendUint32(d, 4096)
			s.optReply(optGo, repInfo, binary.BigEndian.AppendUint32(d, 1<<20))
		}, ErrServerProtocol, "invalid block sizes"},
		{"reply to another option", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optList, repAck, nil)
		}, ErrServerProtocol, "reply to option 3"},
		{"endless info replies", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			for range maxOptReplies + 1 {
				s.optReply(optGo, repInfo, []byte{0, 99})
			}
		}, ErrServerProtocol, "more than 64 replies"},
		{"unknown export", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optGo, repErrUnknown, []byte("no export 'v'\x00\x1b[31m"))
			s.readOpt() // NBD_OPT_ABORT
		}, ErrNoExport, `server says "no export 'v'\x00\x1b[31m"`},
		{"TLS required", func(s *fakeServer) {
			s.greet(flagFixedNewstyle | flagNoZeroes)
			s.readOpt()
			s.optReply(optGo, repErrTLSReqd, nil)
			s.readOpt()
		}, nil, "requires TLS"},
		{"export name refused", func(s *fakeServer) {
			s.greet(0) // not fixed newstyle: NBD_OPT_EXPORT_NAME only
			s.readOpt()
			s.c.Close()
		}, ErrNoExport, "closed the connection after NBD_OPT_EXPORT_NAME"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := withFake(t, Dialer{}, tc.script)
			if err == nil {
				c.Abort()
				t.Fatal("handshake succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

// TestClientOldServers: a server without NBD_OPT_GO, and one without fixed
// newstyle (124 zero bytes after the export flags), are still usable.
func TestClientOldServers(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		c, err := withFake(t, Dialer{}, func(s *fakeServer) {
			if fixed {
				if f := s.greet(flagFixedNewstyle | flagNoZeroes); f != clientFixedNewstyl|clientNoZeroes {
					return
				}
				s.readOpt()
				s.optReply(optGo, repErrUnsup, nil)
			} else if f := s.greet(0); f != 0 {
				return // the client must not set flags the server did not offer
			}
			if o, name := s.readOpt(); o != optExportName || string(name) != "v" {
				return
			}
			b := binary.BigEndian.AppendUint64(nil, 2<<20)
			b = binary.BigEndian.AppendUint16(b, tfHasFlags|tfSendFlush)
			if !fixed {
				b = append(b, make([]byte, exportNameZeroes)...)
			}
			s.write(b)
			typ, cookie, _ := s.readReq()
			if typ == cmdFlush {
				s.reply(simpleReplyMag, 0, cookie, nil)
			}
		})
		if err != nil {
			t.Fatalf("fixed newstyle %v: %v", fixed, err)
		}
		if i := c.Info(); i.Size != 2<<20 || !i.CanFlush() || i.CanZero() || i.MaxBlock != ClientMaxTransfer {
			t.Fatalf("fixed newstyle %v: info %+v", fixed, i)
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("fixed newstyle %v: flush: %v", fixed, err)
		}
		if err := c.Zero(0, 4096, false); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("WRITE_ZEROES on an export without it: %v, want ErrUnsupported", err)
		}
	}
}

// TestClientHostileReplies: replies that break the protocol end the
// connection with a sticky error; error replies do not, except after a READ
// (simple replies cannot resynchronize) and ESHUTDOWN (soft disconnect).
func TestClientHostileReplies(t *testing.T) {
	cases := []struct {
		name   string
		op     func(c *Client) error
		script func(s *fakeServer)
		is     error
		sticky bool // the connection is unusable afterwards
		errno  syscall.Errno
	}{
		{"wrong cookie", func(c *Client) error { return c.Flush() }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(simpleReplyMag, 0, cookie+1, nil)
		}, ErrServerProtocol, true, 0},
		{"structured reply", func(c *Client) error { return c.Flush() }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(structuredReplyMag, 0, cookie, nil)
		}, ErrServerProtocol, true, 0},
		{"bad magic", func(c *Client) error { return c.WriteAt([]byte("x"), 0) }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(0xdeadbeef, 0, cookie, nil)
		}, ErrServerProtocol, true, 0},
		{"closed mid reply", func(c *Client) error { return c.WriteAt([]byte("x"), 0) }, func(s *fakeServer) {
			s.readReq()
			s.write([]byte{0x67, 0x44, 0x66, 0x98, 0, 0})
			s.c.Close()
		}, ErrConnection, true, 0},
		{"closed mid read data", func(c *Client) error { return c.ReadAt(make([]byte, 4096), 0) }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(simpleReplyMag, 0, cookie, make([]byte, 1000))
			s.c.Close()
		}, ErrConnection, true, 0},
		{"write error", func(c *Client) error { return c.WriteAt([]byte("x"), 0) }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(simpleReplyMag, errnoNoSpc, cookie, nil)
			_, cookie, _ = s.readReq() // the follow-up flush
			s.reply(simpleReplyMag, 0, cookie, nil)
		}, ErrRemote, false, syscall.ENOSPC},
		{"unknown errno", func(c *Client) error { return c.Zero(0, 512, false) }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(simpleReplyMag, 9999, cookie, nil)
			_, cookie, _ = s.readReq()
			s.reply(simpleReplyMag, 0, cookie, nil)
		}, ErrRemote, false, syscall.EINVAL},
		{"read error", func(c *Client) error { return c.ReadAt(make([]byte, 512), 0) }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(simpleReplyMag, errnoIO, cookie, nil)
		}, ErrRemote, true, syscall.EIO},
		{"shutdown", func(c *Client) error { return c.WriteAt([]byte("x"), 0) }, func(s *fakeServer) {
			_, cookie, _ := s.readReq()
			s.reply(simpleReplyMag, errnoShutdown, cookie, nil)
			if typ, _, _ := s.readReq(); typ != cmdDisc {
				s.write([]byte("no DISC"))
			}
		}, ErrRemote, true, syscall.ESHUTDOWN},
		{"stalls", func(c *Client) error { return c.Flush() }, func(s *fakeServer) {
			s.readReq()
			s.read(1) // never answers; returns when the client gives up
		}, ErrConnection, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := withFake(t, Dialer{RequestTimeout: 300 * time.Millisecond}, func(s *fakeServer) {
				s.goOK()
				tc.script(s)
			})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.op(c)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if tc.errno != 0 && !errors.Is(err, tc.errno) {
				t.Errorf("error %v, want errno %v", err, tc.errno)
			}
			next := c.Flush()
			if tc.sticky != (c.Err() != nil) || tc.sticky != (next != nil) {
				t.Errorf("after %v: Err() = %v, next request: %v; want unusable = %v", err, c.Err(), next, tc.sticky)
			}
			if tc.sticky && !errors.Is(next, ErrConnection) && !errors.Is(next, ErrServerProtocol) {
				t.Errorf("next request on a dead connection: %v", next)
			}
		})
	}
}

// TestClientRefusesLocally: requests the export does not allow fail before
// anything is sent (the fake server answers nothing).
func TestClientRefusesLocally(t *testing.T) {
	c, err := withFake(t, Dialer{}, func(s *fakeServer) {
		s.greet(flagFixedNewstyle | flagNoZeroes)
		s.readOpt()
		s.optReply(optGo, repInfo, infoExportData(1<<20, tfHasFlags|tfReadOnly))
		s.optReply(optGo, repAck, nil)
		s.read(1) // anything sent now would be read here and fail the checks below
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"flush":    c.Flush(),
		"fua":      c.WriteFUA([]byte("x"), 0),
		"trim":     c.Discard(0, 512),
		"zero":     c.Zero(0, 512, false),
		"write":    c.WriteAt([]byte("x"), 0),
		"read-end": c.ReadAt(make([]byte, 2), 1<<20-1),
		"read-neg": c.ReadAt(make([]byte, 2), -1),
	} {
		if err == nil {
			t.Errorf("%s on a read-only export without flags: accepted", name)
		}
	}
	if c.Err() != nil {
		t.Fatalf("local refusals broke the connection: %v", c.Err())
	}
}
