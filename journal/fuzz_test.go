package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// seedFiles returns valid files of several shapes and broken ones, for the
// fuzz corpora.
func seedFiles() map[string][]byte {
	h, recs, payload := sampleFile()
	valid := encodeRaw(h, recs, payload)
	one := encodeRaw(h, recs[:1], payload[:recs[0].Length])
	markers := []Record{recs[4], recs[5]}
	markers[0].Seq, markers[1].Seq = h.BaseSeq, h.BaseSeq+1
	flipped := bytes.Clone(valid)
	flipped[HeaderSize+5] ^= 1
	return map[string][]byte{
		"valid-mixed":    valid,
		"valid-one":      one,
		"valid-markers":  encodeRaw(h, markers, nil),
		"zeros-only":     encodeRaw(h, []Record{{Kind: KindZero, Seq: h.BaseSeq, Length: 1}}, nil),
		"heartbeat":      encodeRaw(h, []Record{{Kind: KindWatermark, Seq: h.BaseSeq, Time: recs[0].Time}}, nil),
		"truncated":      valid[:len(valid)-1],
		"header-only":    valid[:HeaderSize],
		"flipped-data":   flipped,
		"resealed-flip":  reseal(flipped),
		"foreign":        []byte("#!/bin/sh\necho not a journal\n"),
		"empty":          {},
		"trailing-bytes": append(bytes.Clone(one), 1, 2, 3),
	}
}

// TestWriteFuzzSeeds writes the seed corpus under testdata/fuzz/FuzzParse
// when AIMWAN_WRITE_FUZZ_SEEDS=1 (run it after a format change).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("AIMWAN_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set AIMWAN_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seedFiles() {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParse: Parse never panics, every error is a FormatError with a
// sentinel, and every accepted file re-encodes to exactly its bytes.
func FuzzParse(f *testing.F) {
	for _, b := range seedFiles() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz", b)
		off, n, lerr := Layout(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "fuzz" || fe.Fault == "" {
				t.Fatalf("error %v is not a FormatError naming the file", err)
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrForeign) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if lerr != nil || off != file.Header.Size() || n != int64(len(file.Payload())) {
			t.Fatalf("Layout = %d, %d, %v for a valid file", off, n, lerr)
		}
		for _, r := range file.Records {
			if r.Kind == KindWrite && Checksum(file.Data(r)) != r.CRC {
				t.Fatalf("seq %d: data does not match its CRC", r.Seq)
			}
		}
		if again := encodeRaw(file.Header, file.Records, file.Payload()); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding a valid file gives different bytes")
		}
	})
}

// FuzzRecover: OpenWriter never panics on a damaged open file and sidecar,
// and whatever it recovers is a valid sealed file.
func FuzzRecover(f *testing.F) {
	h, recs, payload := sampleFile()
	h.FileSeq, h.BaseSeq = 1, 1
	var side []byte
	side = append(side, sidecarMagic[:]...)
	side = le.AppendUint64(side, 1)
	for i := range recs {
		recs[i].Seq = uint64(i + 1)
		side = appendFrame(side, appendRecord(nil, &recs[i], Version))
	}
	open := append(encodeHeader(h), payload...)
	f.Add(open, side)
	f.Add(open[:HeaderSize+100], side[:len(side)-3])
	// A version 1 open file and sidecar, as an older build left them.
	h1 := h
	h1.Version, h1.Stream = 1, StreamID{}
	side1 := le.AppendUint64(append([]byte(nil), sidecarMagic[:]...), 1)
	for i := range recs {
		side1 = appendFrame(side1, appendRecord(nil, &recs[i], 1))
	}
	f.Add(append(encodeHeader(h1), payload...), side1)
	f.Add(open, side[:sidecarHeaderSize])
	f.Fuzz(func(t *testing.T, open, side []byte) {
		dir := shmTempDir(t)
		os.WriteFile(openPath(dir, 1), open, 0o644)
		os.WriteFile(sidecarPath(dir, 1), side, 0o644)
		w, got, err := OpenWriter(WriterConfig{Dir: dir, Volume: h.Volume, VolumeSize: h.VolumeSize})
		if err != nil {
			return
		}
		defer w.Close()
		if len(got) == 0 {
			return
		}
		file, err := ReadFile(filepath.Join(dir, FileName(1)))
		if err != nil {
			t.Fatalf("recovered file does not parse: %v", err)
		}
		if len(file.Records) != len(got) {
			t.Fatalf("recovered %d records, sealed %d", len(got), len(file.Records))
		}
	})
}
