package aimsrc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// nbdClient is a minimal synchronous NBD client (fixed newstyle,
// NBD_OPT_EXPORT_NAME) for tests that need to know exactly which requests
// were acknowledged.
type nbdClient struct {
	c      net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	size   int64
	handle uint64
	hdr    [28]byte
}

const (
	tcNBDMagic    = 0x4e42444d41474943
	tcOptMagic    = 0x49484156454f5054
	tcReqMagic    = 0x25609513
	tcReplyMagic  = 0x67446698
	tcCmdRead     = 0
	tcCmdWrite    = 1
	tcCmdDisc     = 2
	tcCmdFlush    = 3
	tcCmdTrim     = 4
	tcCmdZeroes   = 6
	tcFlagFUA     = 1
	tcClientFlags = 1 | 2 // fixed newstyle, no zeroes
)

func dialNBD(addr, export string) (*nbdClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	n := &nbdClient{c: c, r: bufio.NewReaderSize(c, 1<<16), w: bufio.NewWriterSize(c, 1<<20)}
	if err := n.handshake(export); err != nil {
		c.Close()
		return nil, fmt.Errorf("nbd handshake: %w", err)
	}
	return n, nil
}

func (n *nbdClient) handshake(export string) error {
	var hs [18]byte
	if _, err := io.ReadFull(n.r, hs[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(hs[0:]) != tcNBDMagic || binary.BigEndian.Uint64(hs[8:]) != tcOptMagic {
		return fmt.Errorf("bad server greeting")
	}
	b := binary.BigEndian.AppendUint32(nil, tcClientFlags)
	b = binary.BigEndian.AppendUint64(b, tcOptMagic)
	b = binary.BigEndian.AppendUint32(b, 1) // NBD_OPT_EXPORT_NAME
	b = binary.BigEndian.AppendUint32(b, uint32(len(export)))
	b = append(b, export...)
	if _, err := n.c.Write(b); err != nil {
		return err
	}
	var reply [10]byte
	if _, err := io.ReadFull(n.r, reply[:]); err != nil {
		return fmt.Errorf("export %q refused: %w", export, err)
	}
	n.size = int64(binary.BigEndian.Uint64(reply[:8]))
	return nil
}

// request sends one request and waits for its reply; data is the write
// payload, into receives read data.
func (n *nbdClient) request(typ, flags uint16, off int64, length uint32, data, into []byte) error {
	n.handle++
	h := n.hdr[:]
	binary.BigEndian.PutUint32(h[0:], tcReqMagic)
	binary.BigEndian.PutUint16(h[4:], flags)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], n.handle)
	binary.BigEndian.PutUint64(h[16:], uint64(off))
	binary.BigEndian.PutUint32(h[24:], length)
	n.w.Write(h)
	n.w.Write(data)
	if err := n.w.Flush(); err != nil {
		return err
	}
	if typ == tcCmdDisc {
		return nil
	}
	var rep [16]byte
	if _, err := io.ReadFull(n.r, rep[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(rep[0:]) != tcReplyMagic || binary.BigEndian.Uint64(rep[8:]) != n.handle {
		return fmt.Errorf("bad reply header %x", rep)
	}
	if e := binary.BigEndian.Uint32(rep[4:]); e != 0 {
		return fmt.Errorf("nbd error %d", e)
	}
	if into != nil {
		_, err := io.ReadFull(n.r, into)
		return err
	}
	return nil
}

func (n *nbdClient) write(p []byte, off int64) error {
	return n.request(tcCmdWrite, 0, off, uint32(len(p)), p, nil)
}
func (n *nbdClient) read(p []byte, off int64) error {
	return n.request(tcCmdRead, 0, off, uint32(len(p)), nil, p)
}
func (n *nbdClient) flush() error { return n.request(tcCmdFlush, 0, 0, 0, nil, nil) }
func (n *nbdClient) zero(off int64, length uint32) error {
	return n.request(tcCmdZeroes, 0, off, length, nil, nil)
}
func (n *nbdClient) trim(off int64, length uint32) error {
	return n.request(tcCmdTrim, 0, off, length, nil, nil)
}
func (n *nbdClient) close() error {
	n.request(tcCmdDisc, 0, 0, 0, nil, nil)
	return n.c.Close()
}

func mustDialNBD(t testing.TB, addr, export string) *nbdClient {
	t.Helper()
	c, err := dialNBD(addr, export)
	if err != nil {
		t.Fatalf("dial nbd %s/%s: %v", addr, export, err)
	}
	t.Cleanup(func() { c.close() })
	return c
}
