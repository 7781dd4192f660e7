package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// memExport is an in-memory Export that records requests outside its range.
type memExport struct {
	mu   sync.Mutex
	data []byte
	bad  []string
}

func (m *memExport) ok(what string, off, n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || n < 0 || off+n > int64(len(m.data)) {
		m.bad = append(m.bad, fmt.Sprintf("%s %d+%d", what, off, n))
		return false
	}
	return true
}

func (m *memExport) Size() int64    { return int64(len(m.data)) }
func (m *memExport) ReadOnly() bool { return false }
func (m *memExport) ReadAt(p []byte, off int64) error {
	if m.ok("read", off, int64(len(p))) {
		copy(p, m.data[off:])
	}
	return nil
}
func (m *memExport) WriteAt(p []byte, off int64, fua bool) error {
	if m.ok("write", off, int64(len(p))) {
		copy(m.data[off:], p)
	}
	return nil
}
func (m *memExport) WriteZeroes(off, n int64, noHole, fua bool) error {
	if m.ok("zero", off, n) {
		clear(m.data[off : off+n])
	}
	return nil
}
func (m *memExport) Trim(off, n int64) error { m.ok("trim", off, n); return nil }
func (m *memExport) Flush() error            { return nil }

// clientStream builds client bytes: flags, options, then requests.
type clientStream struct{ bytes.Buffer }

func (s *clientStream) u16(v uint16) { s.Write(binary.BigEndian.AppendUint16(nil, v)) }
func (s *clientStream) u32(v uint32) { s.Write(binary.BigEndian.AppendUint32(nil, v)) }
func (s *clientStream) u64(v uint64) { s.Write(binary.BigEndian.AppendUint64(nil, v)) }
func (s *clientStream) option(code uint32, data []byte) {
	s.u64(optMagic)
	s.u32(code)
	s.u32(uint32(len(data)))
	s.Write(data)
}
func (s *clientStream) request(typ, flags uint16, off uint64, length uint32, payload []byte) {
	s.u32(requestMagic)
	s.u16(flags)
	s.u16(typ)
	s.u64(0xc00c1e)
	s.u64(off)
	s.u32(length)
	s.Write(payload)
}

// fuzzSeeds are client streams covering each option and command.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	var s clientStream
	s.u32(clientFixedNewstyl | clientNoZeroes)
	s.option(optList, nil)
	s.option(optInfo, infoData("vol1"))
	s.option(optStructuredReply, nil)
	s.option(optGo, infoData("vol1"))
	s.request(cmdWrite, cmdFlagFUA, 512, 8, []byte("abcdefgh"))
	s.request(cmdRead, 0, 510, 16, nil)
	s.request(cmdFlush, 0, 0, 0, nil)
	s.request(cmdTrim, 0, 0, 4096, nil)
	s.request(cmdWriteZeroes, cmdFlagNoHole, 4096, 8192, nil)
	s.request(cmdRead, 0, 65530, 100, nil)
	s.request(cmdDisc, 0, 0, 0, nil)
	seeds = append(seeds, bytes.Clone(s.Bytes()))

	s.Reset()
	s.u32(clientFixedNewstyl)
	s.option(optExportName, []byte("vol1"))
	s.request(cmdWrite, 0, 65535, 2, []byte("xy"))
	s.request(cmdRead, 0, 1<<63, 10, nil)
	seeds = append(seeds, bytes.Clone(s.Bytes()))

	s.Reset()
	s.u32(clientFixedNewstyl)
	s.option(optGo, infoData("../etc"))
	s.option(optAbort, nil)
	seeds = append(seeds, bytes.Clone(s.Bytes()))
	return seeds
}

// FuzzRequest feeds arbitrary client bytes (handshake options and
// transmission requests) to a server connection: it must never panic, hang,
// or pass an out-of-range request to the export.
func FuzzRequest(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		exp := &memExport{data: make([]byte, 64<<10)}
		s := (&Server{Exports: ExportMap{"vol1": exp}, MaxRequest: 16 << 10, Logger: log}).withDefaults()
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard}
		s.serveStream(context.Background(), rw, log, nil)
		if len(exp.bad) > 0 {
			t.Fatalf("out-of-range requests reached the export: %v", exp.bad)
		}
	})
}

func TestParseRequest(t *testing.T) {
	var s clientStream
	s.request(cmdWrite, cmdFlagFUA, 4096, 512, nil)
	r, err := parseRequest(s.Bytes())
	if err != nil || r.typ != cmdWrite || r.flags != cmdFlagFUA || r.off != 4096 || r.length != 512 || r.cookie != 0xc00c1e {
		t.Fatalf("parseRequest = %+v, %v", r, err)
	}
	b := bytes.Clone(s.Bytes())
	b[0] ^= 0xff
	if _, err := parseRequest(b); err == nil {
		t.Error("bad magic accepted")
	}
	if _, err := parseRequest(b[:10]); err == nil {
		t.Error("short header accepted")
	}
	for _, tt := range []struct {
		data []byte
		ok   bool
	}{
		{infoData("vol1"), true},
		{nil, false},
		{[]byte{0, 0, 0, 4, 'v', 'o', 'l'}, false},
		{append(infoData("vol1"), 0), false},
		{[]byte{0, 0, 0, 0, 0, 1, 0, 3}, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0, 0}, false},
	} {
		if _, _, err := parseInfoRequest(tt.data); (err == nil) != tt.ok {
			t.Errorf("parseInfoRequest(% x): err %v, want ok=%v", tt.data, err, tt.ok)
		}
	}
}

// TestWriteFuzzSeeds keeps testdata/fuzz/FuzzRequest in step with fuzzSeeds
// when run with -update-seeds; otherwise it checks the files exist.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRequest")
	for i, s := range fuzzSeeds() {
		path := filepath.Join(dir, fmt.Sprintf("seed-%d", i))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if os.Getenv("NBD_UPDATE_SEEDS") != "" {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s missing or stale (run with NBD_UPDATE_SEEDS=1): %v", path, err)
		}
	}
}
