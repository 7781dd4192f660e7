package nbd

import (
	"encoding/binary"
	"fmt"
)

// request is one transmission request header.
type request struct {
	flags  uint16
	typ    uint16
	cookie uint64
	off    uint64
	length uint32
}

// parseRequest decodes a 28-byte request header.
func parseRequest(b []byte) (request, error) {
	if len(b) != requestHdrSize {
		return request{}, fmt.Errorf("%w: request header of %d bytes", errProtocol, len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != requestMagic {
		return request{}, fmt.Errorf("%w: request magic %#x, want %#x", errProtocol, m, requestMagic)
	}
	return request{
		flags:  binary.BigEndian.Uint16(b[4:]),
		typ:    binary.BigEndian.Uint16(b[6:]),
		cookie: binary.BigEndian.Uint64(b[8:]),
		off:    binary.BigEndian.Uint64(b[16:]),
		length: binary.BigEndian.Uint32(b[24:]),
	}, nil
}

// cmdName names a command for logs.
func cmdName(t uint16) string {
	switch t {
	case cmdRead:
		return "READ"
	case cmdWrite:
		return "WRITE"
	case cmdDisc:
		return "DISC"
	case cmdFlush:
		return "FLUSH"
	case cmdTrim:
		return "TRIM"
	case cmdCache:
		return "CACHE"
	case cmdWriteZeroes:
		return "WRITE_ZEROES"
	case cmdBlockStatus:
		return "BLOCK_STATUS"
	}
	return fmt.Sprintf("command-%d", t)
}

// check validates a request against the export and limits before the Export
// sees it. It returns 0 or the errno of the reply, and a reason for the log.
func check(r request, size int64, readOnly bool, maxRequest int) (uint32, string) {
	allowed := uint16(0)
	switch r.typ {
	case cmdRead, cmdFlush:
	case cmdWrite, cmdTrim:
		allowed = cmdFlagFUA
	case cmdWriteZeroes:
		allowed = cmdFlagFUA | cmdFlagNoHole
	default:
		return errnoInval, "unsupported command"
	}
	if r.flags&^allowed != 0 {
		return errnoInval, fmt.Sprintf("flags %#x not allowed", r.flags)
	}
	if r.typ == cmdFlush {
		return errnoOK, ""
	}
	if readOnly && r.typ != cmdRead {
		return errnoPerm, "export is read-only"
	}
	if (r.typ == cmdRead || r.typ == cmdWrite) && int64(r.length) > int64(maxRequest) {
		if r.typ == cmdRead {
			return errnoOverflow, fmt.Sprintf("length %d exceeds maximum %d", r.length, maxRequest)
		}
		return errnoInval, fmt.Sprintf("length %d exceeds maximum %d", r.length, maxRequest)
	}
	if r.off > uint64(size) || uint64(r.length) > uint64(size)-r.off {
		reason := fmt.Sprintf("range %d+%d beyond size %d", r.off, r.length, size)
		if r.typ == cmdWrite || r.typ == cmdWriteZeroes {
			return errnoNoSpc, reason
		}
		return errnoInval, reason
	}
	return errnoOK, ""
}
