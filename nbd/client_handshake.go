package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
)

// Limits on what a server may send during the handshake; beyond them the
// server is broken or hostile and the handshake fails.
const (
	maxOptReplyLen = 64 << 10 // data of one option reply
	maxOptReplies  = 64       // replies to one NBD_OPT_GO
)

// ErrNoExport is wrapped when the server has no export of the name asked.
var ErrNoExport = errors.New("nbd server has no such export")

// handshake negotiates the export: fixed newstyle with NBD_OPT_GO (asking
// for NBD_INFO_BLOCK_SIZE), falling back to NBD_OPT_EXPORT_NAME for a server
// without NBD_OPT_GO or without fixed newstyle.
func (n *Client) handshake() error {
	var hs [18]byte
	if _, err := io.ReadFull(n.r, hs[:16]); err != nil {
		return fmt.Errorf("%w: read greeting: %w", ErrConnection, err)
	}
	if binary.BigEndian.Uint64(hs[0:]) != nbdMagic {
		return fmt.Errorf("%w: not a newstyle NBD server (greeting %x)", ErrServerProtocol, hs[:16])
	}
	if binary.BigEndian.Uint64(hs[8:]) == oldstyleMagic {
		return fmt.Errorf("%w: oldstyle NBD server (no export names): not supported", ErrServerProtocol)
	}
	if binary.BigEndian.Uint64(hs[8:]) != optMagic {
		return fmt.Errorf("%w: not a newstyle NBD server (greeting %x)", ErrServerProtocol, hs[:16])
	}
	if _, err := io.ReadFull(n.r, hs[16:]); err != nil {
		return fmt.Errorf("%w: read handshake flags: %w", ErrConnection, err)
	}
	sflags := binary.BigEndian.Uint16(hs[16:])
	fixed, noZeroes := sflags&flagFixedNewstyle != 0, sflags&flagNoZeroes != 0
	var cflags uint32
	if fixed {
		cflags |= clientFixedNewstyl
	}
	if noZeroes {
		cflags |= clientNoZeroes
	}
	if err := n.send(binary.BigEndian.AppendUint32(nil, cflags)); err != nil {
		return err
	}
	if fixed {
		done, err := n.optGo()
		if done || err != nil {
			return err
		}
	}
	return n.exportName(noZeroes)
}

// send writes b to the server now.
func (n *Client) send(b []byte) error {
	n.w.Write(b)
	if err := n.w.Flush(); err != nil {
		return fmt.Errorf("%w: send: %w", ErrConnection, err)
	}
	return nil
}

// option sends one option with its data.
func (n *Client) option(code uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, optMagic)
	b = binary.BigEndian.AppendUint32(b, code)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return n.send(append(b, data...))
}

// optGo sends NBD_OPT_GO and reads its replies. It returns false (and no
// error) when the server does not know the option, so the caller falls back
// to NBD_OPT_EXPORT_NAME.
func (n *Client) optGo() (bool, error) {
	data := binary.BigEndian.AppendUint32(nil, uint32(len(n.target.Export)))
	data = append(data, n.target.Export...)
	data = binary.BigEndian.AppendUint16(data, 1)
	data = binary.BigEndian.AppendUint16(data, infoBlockSize)
	if err := n.option(optGo, data); err != nil {
		return false, err
	}
	gotExport, gotBlocks := false, false
	for range maxOptReplies {
		typ, d, err := n.optReply(optGo)
		if err != nil {
			return false, err
		}
		switch {
		case typ == repAck:
			if !gotExport {
				return false, fmt.Errorf("%w: NBD_OPT_GO acknowledged without NBD_INFO_EXPORT", ErrServerProtocol)
			}
			if !gotBlocks {
				n.info.MinBlock, n.info.PreferredBlock, n.info.MaxBlock = 1, 4096, ClientMaxTransfer
			}
			return true, nil
		case typ == repInfo:
			kind, err := n.parseInfo(d)
			if err != nil {
				return false, err
			}
			gotExport = gotExport || kind == infoExport
			gotBlocks = gotBlocks || kind == infoBlockSize
		case typ == repErrUnsup:
			return false, nil
		case typ&(1<<31) != 0:
			n.option(optAbort, nil) // best effort: end the session politely
			return false, optError(n.target.Export, typ, d)
		default:
			return false, fmt.Errorf("%w: option reply type %d to NBD_OPT_GO", ErrServerProtocol, typ)
		}
	}
	return false, fmt.Errorf("%w: more than %d replies to NBD_OPT_GO", ErrServerProtocol, maxOptReplies)
}

// optReply reads one option reply to option want.
func (n *Client) optReply(want uint32) (uint32, []byte, error) {
	var h [20]byte
	if _, err := io.ReadFull(n.r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: read option reply: %w", ErrConnection, err)
	}
	if m := binary.BigEndian.Uint64(h[0:]); m != optReplyMagic {
		return 0, nil, fmt.Errorf("%w: option reply magic %#x", ErrServerProtocol, m)
	}
	if o := binary.BigEndian.Uint32(h[8:]); o != want {
		return 0, nil, fmt.Errorf("%w: reply to option %d, want %d", ErrServerProtocol, o, want)
	}
	typ, l := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
	if l > maxOptReplyLen {
		return 0, nil, fmt.Errorf("%w: option reply of %d bytes (limit %d)", ErrServerProtocol, l, maxOptReplyLen)
	}
	d := make([]byte, l)
	if _, err := io.ReadFull(n.r, d); err != nil {
		return 0, nil, fmt.Errorf("%w: read option reply data: %w", ErrConnection, err)
	}
	return typ, d, nil
}

// parseInfo takes in one NBD_REP_INFO and returns its info type. Unknown
// types are skipped, as the spec asks.
func (n *Client) parseInfo(d []byte) (uint16, error) {
	if len(d) < 2 {
		return 0, fmt.Errorf("%w: NBD_REP_INFO of %d bytes", ErrServerProtocol, len(d))
	}
	kind := binary.BigEndian.Uint16(d)
	switch kind {
	case infoExport:
		if len(d) != 12 {
			return 0, fmt.Errorf("%w: NBD_INFO_EXPORT of %d bytes, want 12", ErrServerProtocol, len(d))
		}
		return kind, n.setExport(binary.BigEndian.Uint64(d[2:]), binary.BigEndian.Uint16(d[10:]))
	case infoBlockSize:
		if len(d) != 14 {
			return 0, fmt.Errorf("%w: NBD_INFO_BLOCK_SIZE of %d bytes, want 14", ErrServerProtocol, len(d))
		}
		minB, pref, maxB := binary.BigEndian.Uint32(d[2:]), binary.BigEndian.Uint32(d[6:]), binary.BigEndian.Uint32(d[10:])
		if err := checkBlockSizes(minB, pref, maxB); err != nil {
			return 0, err
		}
		n.info.MinBlock, n.info.PreferredBlock, n.info.MaxBlock = minB, pref, maxB
	}
	return kind, nil
}

// checkBlockSizes applies the spec's constraints on NBD_INFO_BLOCK_SIZE.
func checkBlockSizes(minB, pref, maxB uint32) error {
	pow2 := func(v uint32) bool { return v != 0 && bits.OnesCount32(v) == 1 }
	if !pow2(minB) || minB > 64<<10 || !pow2(pref) || pref < minB || maxB < pref || (maxB != math.MaxUint32 && maxB%minB != 0) {
		return fmt.Errorf("%w: invalid block sizes: minimum %d, preferred %d, maximum %d", ErrServerProtocol, minB, pref, maxB)
	}
	return nil
}

// setExport records the size and transmission flags of the export.
func (n *Client) setExport(size uint64, flags uint16) error {
	if size > math.MaxInt64 {
		return fmt.Errorf("%w: export size %d", ErrServerProtocol, size)
	}
	if flags&tfHasFlags == 0 {
		flags = 0 // the other bits mean nothing without HAS_FLAGS
	}
	n.info.Size, n.info.Flags = int64(size), flags
	return nil
}

// optError is the error for an error reply to NBD_OPT_GO, with the server's
// message quoted.
func optError(export string, typ uint32, msg []byte) error {
	why := ""
	if len(msg) > 0 {
		why = ": server says " + strconv.QuoteToASCII(string(msg[:min(len(msg), 256)]))
	}
	switch typ {
	case repErrUnknown:
		return fmt.Errorf("%w %q%s", ErrNoExport, export, why)
	case repErrTLSReqd:
		return fmt.Errorf("export %q: the server requires TLS, which this client does not speak%s", export, why)
	case repErrPolicy:
		return fmt.Errorf("export %q: refused by the server's policy%s", export, why)
	case repErrShutdown:
		return fmt.Errorf("export %q: the server is shutting down%s", export, why)
	}
	return fmt.Errorf("export %q: NBD_OPT_GO refused (error %#x)%s", export, typ, why)
}

// exportName is the old way into transmission: NBD_OPT_EXPORT_NAME, then
// the export size and flags (and 124 zero bytes unless NO_ZEROES was
// agreed). A server that does not know the name closes the connection.
func (n *Client) exportName(noZeroes bool) error {
	if err := n.option(optExportName, []byte(n.target.Export)); err != nil {
		return err
	}
	reply := make([]byte, 10, 10+exportNameZeroes)
	if !noZeroes {
		reply = reply[:10+exportNameZeroes]
	}
	if _, err := io.ReadFull(n.r, reply); err != nil {
		return fmt.Errorf("%w %q (the server closed the connection after NBD_OPT_EXPORT_NAME): %w", ErrNoExport, n.target.Export, err)
	}
	n.info.MinBlock, n.info.PreferredBlock, n.info.MaxBlock = 1, 4096, ClientMaxTransfer
	return n.setExport(binary.BigEndian.Uint64(reply), binary.BigEndian.Uint16(reply[8:]))
}
