package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// serverStream builds the bytes a server sends: greeting, NBD_OPT_GO
// replies, then simple replies for cookies 1, 2, ... (data after a reply
// when given).
type serverStream []byte

func (s serverStream) greeting(flags uint16) serverStream {
	s = binary.BigEndian.AppendUint64(s, nbdMagic)
	s = binary.BigEndian.AppendUint64(s, optMagic)
	return binary.BigEndian.AppendUint16(s, flags)
}

func (s serverStream) optReply(opt, typ uint32, data []byte) serverStream {
	s = binary.BigEndian.AppendUint64(s, optReplyMagic)
	s = binary.BigEndian.AppendUint32(s, opt)
	s = binary.BigEndian.AppendUint32(s, typ)
	s = binary.BigEndian.AppendUint32(s, uint32(len(data)))
	return append(s, data...)
}

func (s serverStream) reply(errno uint32, cookie uint64, data []byte) serverStream {
	s = binary.BigEndian.AppendUint32(s, simpleReplyMag)
	s = binary.BigEndian.AppendUint32(s, errno)
	s = binary.BigEndian.AppendUint64(s, cookie)
	return append(s, data...)
}

// fuzzOps is what the fuzzed client does after the handshake.
func fuzzOps(c *Client) []error {
	buf := make([]byte, 16)
	return []error{
		c.ReadAt(buf, 0),
		c.WriteAt([]byte("aimwan!!"), 8),
		c.Zero(0, 4096, false),
		c.Flush(),
		c.ReadAt(buf, 4),
	}
}

// FuzzClient feeds arbitrary server bytes (handshake and replies) to a
// client that negotiates and then reads, writes, zeroes and flushes. The
// client must not panic or hang, must bound what it allocates, and once the
// connection is unusable every later request must fail.
func FuzzClient(f *testing.F) {
	blk := binary.BigEndian.AppendUint16(nil, infoBlockSize)
	blk = binary.BigEndian.AppendUint32(blk, 512)
	blk = binary.BigEndian.AppendUint32(blk, 4096)
	blk = binary.BigEndian.AppendUint32(blk, 1<<20)
	good := serverStream(nil).greeting(flagFixedNewstyle|flagNoZeroes).
		optReply(optGo, repInfo, infoExportData(1<<20, allFlags)).
		optReply(optGo, repInfo, blk).
		optReply(optGo, repAck, nil).
		reply(0, 1, make([]byte, 16)).reply(0, 2, nil).reply(0, 3, nil).reply(0, 4, nil).reply(0, 5, []byte("0123456789abcdef"))
	f.Add([]byte(good))
	f.Add([]byte(serverStream(nil).greeting(flagFixedNewstyle|flagNoZeroes).
		optReply(optGo, repErrUnsup, nil)))
	f.Add([]byte(serverStream(nil).greeting(0)))
	f.Add([]byte(serverStream(nil).greeting(flagFixedNewstyle|flagNoZeroes).
		optReply(optGo, repInfo, infoExportData(1<<20, allFlags)).
		optReply(optGo, repAck, nil).
		reply(errnoIO, 1, nil)))
	f.Add([]byte(serverStream(nil).greeting(flagFixedNewstyle|flagNoZeroes).
		optReply(optGo, repInfo, infoExportData(1<<20, allFlags)).
		optReply(optGo, repAck, nil).
		reply(0, 1, make([]byte, 16)).reply(errnoNoSpc, 2, nil).reply(errnoShutdown, 3, nil)))
	f.Fuzz(func(t *testing.T, stream []byte) {
		cc, sc := net.Pipe()
		defer cc.Close()
		done := make(chan struct{}, 2)
		go func() { sc.Write(stream); sc.Close(); done <- struct{}{} }()
		go func() { io.Copy(io.Discard, sc); done <- struct{}{} }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d := Dialer{HandshakeTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second}
		c, err := d.Client(ctx, cc, Target{Network: "pipe", Address: "fuzz", Export: "v"})
		if err == nil {
			if c.Size() < 0 || c.Info().MaxBlock == 0 || c.Info().MinBlock == 0 {
				t.Fatalf("accepted export info %+v", c.Info())
			}
			dead := false
			for i, e := range fuzzOps(c) {
				if dead && e == nil {
					t.Fatalf("op %d succeeded on a dead connection", i)
				}
				if errors.Is(e, ErrConnection) || errors.Is(e, ErrServerProtocol) {
					dead = true
				}
			}
			if dead && c.Err() == nil {
				t.Fatal("a connection error did not stick")
			}
			c.Abort()
		}
		cc.Close()
		<-done
		<-done
	})
}

// FuzzParseURI: ParseURI never panics, and a target it accepts prints as a
// URI that parses back to the same target.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"nbd://example.com:10809/disk", "nbd://[::1]/e", "nbd://h", "nbd+unix:///disk?socket=/run/q.sock",
		"nbd://h/hello%20world", "nbd://h//disk", "nbds://h/e", "nbd://u@h/e", "nbd://h/e?tls-type=x509",
		"nbd+unix://h/e?socket=s", "nbd://h:/e", "nbd+unix:///?socket=%00/abstract", "file:///x", "/dev/sdb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseURI(s)
		if err != nil {
			return
		}
		back, err := ParseURI(tg.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, printed as %q, which does not parse: %v", s, tg, tg.String(), err)
		}
		if back != tg {
			t.Fatalf("%q -> %+v -> %q -> %+v", s, tg, tg.String(), back)
		}
	})
}
