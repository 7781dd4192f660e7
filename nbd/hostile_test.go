package nbd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
)

// countingExports records every name that reaches Lookup.
type countingExports struct {
	ExportMap
	lookups atomic.Int32
}

func (e *countingExports) Lookup(name string) (Export, error) {
	e.lookups.Add(1)
	return e.ExportMap.Lookup(name)
}

func TestHostileHandshake(t *testing.T) {
	exp := newFileExport(t, t.TempDir(), 1<<20)
	exps := &countingExports{ExportMap: ExportMap{"vol1": exp}}
	addr := startServer(t, &Server{Exports: exps})

	t.Run("bad option magic closes", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(clientFixedNewstyl)
		c.write(bytes.Repeat([]byte{0x42}, 16))
		c.expectEOF()
	})
	t.Run("not fixed newstyle closes", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(0)
		c.expectEOF()
	})
	t.Run("unknown client flags close", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(clientFixedNewstyl | 1<<7)
		c.expectEOF()
	})
	t.Run("oversized option length closes", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(clientFixedNewstyl)
		b := binary.BigEndian.AppendUint64(nil, optMagic)
		b = binary.BigEndian.AppendUint32(b, optGo)
		c.write(binary.BigEndian.AppendUint32(b, 0xffffffff))
		c.expectEOF()
	})
	t.Run("unsupported options then GO", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(clientFixedNewstyl | clientNoZeroes)
		for _, opt := range []uint32{optStructuredReply, optStartTLS, optExtendedHeaders, optSetMetaContext, 99, 0xffffffff} {
			c.option(opt, []byte("junk"))
			if typ, msg := c.optReply(opt); typ != repErrUnsup {
				t.Errorf("option %d: reply %#x (%s), want NBD_REP_ERR_UNSUP", opt, typ, msg)
			}
		}
		c.option(optList, []byte("x"))
		if typ, _ := c.optReply(optList); typ != repErrInvalid {
			t.Errorf("LIST with data: reply %#x, want NBD_REP_ERR_INVALID", typ)
		}
		c.option(optGo, []byte{0, 0, 0, 200, 'a'}) // name length beyond the data
		if typ, _ := c.optReply(optGo); typ != repErrInvalid {
			t.Errorf("GO with short data: reply %#x, want NBD_REP_ERR_INVALID", typ)
		}
		if typ := c.goExport("vol1"); typ != repAck || c.size != 1<<20 {
			t.Fatalf("GO after junk: reply %#x size %d", typ, c.size)
		}
		if errno, _ := c.do(cmdRead, 0, 0, 512, nil); errno != 0 {
			t.Errorf("read after junk options: errno %d", errno)
		}
	})
	before := exps.lookups.Load()
	for _, name := range []string{"nope", "../vol1", "vol1/../../etc/passwd", "", "a\x00b", string(bytes.Repeat([]byte("a"), 4096))} {
		t.Run(fmt.Sprintf("unknown export %.20q", name), func(t *testing.T) {
			c := tdial(t, addr)
			c.greet(clientFixedNewstyl)
			for _, opt := range []uint32{optInfo, optGo} {
				c.option(opt, infoData(name))
				if typ, _ := c.optReply(opt); typ != repErrUnknown {
					t.Errorf("option %d for %q: reply %#x, want NBD_REP_ERR_UNKNOWN", opt, name, typ)
				}
			}
			c.option(optExportName, []byte(name)) // no error reply exists: the server closes
			c.expectEOF()
		})
	}
	// Only "nope" passes name validation (INFO, GO, EXPORT_NAME: 3 lookups);
	// names with "../", NUL or 4096 bytes never reach Exports.Lookup.
	if n := exps.lookups.Load() - before; n != 3 {
		t.Errorf("Lookup called %d times for invalid names, want 3 (only for \"nope\")", n)
	}
	t.Run("abort", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(clientFixedNewstyl)
		c.option(optAbort, nil)
		if typ, _ := c.optReply(optAbort); typ != repAck {
			t.Errorf("ABORT: reply %#x", typ)
		}
		c.expectEOF()
	})
	t.Run("export name for old clients", func(t *testing.T) {
		c := tdial(t, addr)
		c.greet(clientFixedNewstyl) // without NO_ZEROES: 124 zero bytes follow
		c.option(optExportName, []byte("vol1"))
		var b [8 + 2 + 124]byte
		c.readFull(b[:])
		if binary.BigEndian.Uint64(b[:]) != 1<<20 || !bytes.Equal(b[10:], make([]byte, 124)) {
			t.Fatalf("EXPORT_NAME reply % x", b[:12])
		}
		if errno, _ := c.do(cmdRead, 0, 4096, 4096, nil); errno != 0 {
			t.Errorf("read: errno %d", errno)
		}
	})
	exp.checkInRange(t)
}

func TestHostileRequests(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	exp := newFileExport(t, dir, size)
	ro := newFileExport(t, t.TempDir(), size)
	ro.readOnly = true
	addr := startServer(t, &Server{Exports: ExportMap{"vol1": exp, "snap": ro}, MaxRequest: 1 << 20})
	c := connect(t, addr, "vol1")
	want := uint16(tfHasFlags | tfSendFlush | tfSendFUA | tfSendTrim | tfSendWriteZeroes)
	if c.flags != want {
		t.Errorf("transmission flags %#x, want %#x", c.flags, want)
	}
	huge := uint64(1<<64 - 1)
	tests := []struct {
		name    string
		typ     uint16
		flags   uint16
		off     uint64
		length  uint32
		payload []byte
		want    uint32
	}{
		{"read past end", cmdRead, 0, size - 100, 200, nil, errnoInval},
		{"read offset beyond", cmdRead, 0, size + 4096, 1, nil, errnoInval},
		{"read offset overflow", cmdRead, 0, huge, 2, nil, errnoInval},
		{"read oversized", cmdRead, 0, 0, 1<<20 + 1, nil, errnoOverflow},
		{"write past end", cmdWrite, 0, size - 10, 20, make([]byte, 20), errnoNoSpc},
		{"write overflow", cmdWrite, 0, huge - 5, 10, make([]byte, 10), errnoNoSpc},
		{"write oversized", cmdWrite, 0, 0, 2 << 20, make([]byte, 2<<20), errnoInval},
		{"trim past end", cmdTrim, 0, size, 1, nil, errnoInval},
		{"zeroes past end", cmdWriteZeroes, 0, size - 1, 2, nil, errnoNoSpc},
		{"unknown command", 42, 0, 0, 0, nil, errnoInval},
		{"block status not negotiated", cmdBlockStatus, 0, 0, 512, nil, errnoInval},
		{"unknown flag", cmdRead, 1 << 9, 0, 512, nil, errnoInval},
		{"no-hole on write", cmdWrite, cmdFlagNoHole, 0, 4, []byte("abcd"), errnoInval},
		{"zero-length read", cmdRead, 0, size, 0, nil, 0},
		{"large zeroes are fine", cmdWriteZeroes, 0, 0, size, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errno, _ := c.do(tt.typ, tt.flags, tt.off, tt.length, tt.payload); errno != tt.want {
				t.Errorf("errno %d, want %d", errno, tt.want)
			}
			// The stream stays in step: a valid request still works.
			if errno, _ := c.do(cmdWrite, 0, 0, 4, []byte("ok!!")); errno != 0 {
				t.Fatalf("follow-up write: errno %d", errno)
			}
		})
	}
	t.Run("read-only export", func(t *testing.T) {
		c := connect(t, addr, "snap")
		if c.flags&tfReadOnly == 0 {
			t.Errorf("READ_ONLY flag missing: %#x", c.flags)
		}
		for _, typ := range []uint16{cmdWrite, cmdTrim, cmdWriteZeroes} {
			var p []byte
			if typ == cmdWrite {
				p = make([]byte, 512)
			}
			if errno, _ := c.do(typ, 0, 0, 512, p); errno != errnoPerm {
				t.Errorf("%s on read-only: errno %d, want EPERM", cmdName(typ), errno)
			}
		}
		if errno, _ := c.do(cmdRead, 0, 0, 512, nil); errno != 0 {
			t.Errorf("read on read-only: errno %d", errno)
		}
	})
	t.Run("bad request magic closes", func(t *testing.T) {
		c := connect(t, addr, "vol1")
		c.write(bytes.Repeat([]byte{0x11}, requestHdrSize))
		c.expectEOF()
	})
	t.Run("truncated write payload closes", func(t *testing.T) {
		c := connect(t, addr, "vol1")
		c.request(cmdWrite, 0, 1, 8192, 4096, make([]byte, 100))
		c.nc.(interface{ CloseWrite() error }).CloseWrite()
		c.expectEOF()
	})
	t.Run("truncated header closes", func(t *testing.T) {
		c := connect(t, addr, "vol1")
		c.write([]byte{0x25, 0x60, 0x95})
		c.nc.(interface{ CloseWrite() error }).CloseWrite()
		c.expectEOF()
	})
	t.Run("disc", func(t *testing.T) {
		c := connect(t, addr, "vol1")
		c.request(cmdWrite, 0, 5, 0, 4, []byte("disc"))
		c.request(cmdDisc, 0, 6, 0, 0, nil)
		if cookie, errno := c.reply(); cookie != 5 || errno != 0 {
			t.Fatalf("write before DISC: cookie %d errno %d", cookie, errno)
		}
		c.expectEOF()
	})
	exp.checkInRange(t)
	ro.checkInRange(t)
	b := make([]byte, 4)
	exp.f.ReadAt(b, 0)
	if string(b) != "disc" {
		t.Errorf("write before DISC not applied: %q", b)
	}
}
