package proxy

import (
	"crypto/sha256"
	"math"
)

// maxSize bounds every size field: no file or blob is near it, and it keeps
// sums of sizes far from overflow.
const maxSize = math.MaxInt64 / 8

func (h WANHello) encode(magic bool) []byte {
	var e encoder
	if magic {
		e.b = append(e.b, Magic...)
	}
	e.u16(h.Version)
	e.u8(uint8(h.Mode))
	e.str(h.Node)
	e.str(h.Params)
	e.u64(h.Epoch)
	e.u64(h.Held)
	e.u64(h.Capacity)
	e.u64(h.Mark)
	return e.b
}

// DecodeWANHello parses a HELLO or HELLO_OK body.
func DecodeWANHello(body []byte) (WANHello, error) {
	d := decoder{b: body}
	var h WANHello
	if string(d.take(len(Magic))) != Magic {
		if d.err == nil {
			d.err = frameErr("hello without magic %q", Magic)
		}
		return h, d.err
	}
	h.Version = d.u16()
	h.Mode = Mode(d.u8())
	h.Node = d.str()
	h.Params = d.str()
	h.Epoch = d.u64()
	h.Held = uint64(d.size("held list entries", maxHeldEntries))
	h.Capacity = uint64(d.size("store capacity", 1<<50))
	h.Mark = d.u64()
	if err := d.done(); err != nil {
		return WANHello{}, err
	}
	return h, nil
}

func (f FileHeader) encode() []byte {
	var e encoder
	e.str(f.Volume)
	e.str(f.Name)
	e.u64(f.Seq)
	e.u64(uint64(f.Size))
	e.b = append(e.b, f.SHA256[:]...)
	e.u8(uint8(f.Mode))
	e.u64(uint64(f.PayloadOff))
	e.u64(uint64(f.PayloadLen))
	e.u64(uint64(f.MetaLen))
	e.u64(uint64(f.StreamLen))
	var flags uint8
	if f.AnyOrder {
		flags |= fileAnyOrder
	}
	e.u8(flags)
	return e.b
}

// DecodeFileHeader parses a FILE body and checks that its fields agree.
func DecodeFileHeader(body []byte) (FileHeader, error) {
	d := decoder{b: body}
	var f FileHeader
	f.Volume = d.str()
	f.Name = d.str()
	f.Seq = d.u64()
	f.Size = d.size("file size", maxSize)
	copy(f.SHA256[:], d.take(sha256.Size))
	f.Mode = Mode(d.u8())
	f.PayloadOff = d.size("payload offset", maxSize)
	f.PayloadLen = d.size("payload length", maxSize)
	f.MetaLen = d.size("metadata length", maxSize)
	f.StreamLen = d.size("stream length", maxSize)
	flags := d.u8()
	f.AnyOrder = flags&fileAnyOrder != 0
	if err := d.done(); err != nil {
		return FileHeader{}, err
	}
	switch {
	case f.Volume == "" || f.Name == "":
		return FileHeader{}, frameErr("file without volume or name")
	case flags&^fileFlags != 0:
		return FileHeader{}, frameErr("unknown file flags %#x", flags)
	case f.Mode != ModeOptimize && f.Mode != ModePassthrough:
		return FileHeader{}, frameErr("unknown mode %d", f.Mode)
	case f.PayloadOff+f.PayloadLen > f.Size:
		return FileHeader{}, frameErr("payload %d+%d beyond file size %d", f.PayloadOff, f.PayloadLen, f.Size)
	case f.Mode == ModePassthrough && (f.MetaLen != 0 || f.StreamLen != f.Size):
		return FileHeader{}, frameErr("pass-through file of %d bytes with %d+%d bytes of data", f.Size, f.MetaLen, f.StreamLen)
	}
	return f, nil
}

func (r Result) encode() []byte {
	var e encoder
	e.u16(r.Code)
	e.str(r.Msg)
	return e.b
}

// DecodeResult parses a RESULT body.
func DecodeResult(body []byte) (Result, error) {
	d := decoder{b: body}
	r := Result{Code: d.u16(), Msg: d.str()}
	return r, d.done()
}

func encodeRefuse(reason string) []byte {
	var e encoder
	e.str(reason)
	return e.b
}

// DecodeRefuse parses a REFUSE body.
func DecodeRefuse(body []byte) (string, error) {
	d := decoder{b: body}
	s := d.str()
	return s, d.done()
}
