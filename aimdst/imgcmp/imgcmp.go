// Package imgcmp compares two volume images byte for byte and reports where
// they differ.
//
// Glossary
//
//   - range: a run of bytes [Off, Off+Len) in which the images differ at
//     least at the first and last byte; differing bytes closer than the merge
//     gap are reported as one range.
//   - tail: when the images differ in size, the bytes beyond the shorter one
//     count as different.
package imgcmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Range is a run of differing bytes.
type Range struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// Result is the outcome of a comparison.
type Result struct {
	SizeA, SizeB int64
	Equal        bool
	Ranges       []Range // the first differing ranges, at most the limit asked for
	More         bool    // more differing ranges exist than Ranges holds
	Compared     int64   // bytes compared (the common size)
}

// mergeGap joins differences closer than this into one range.
const mergeGap = 4096

// blockSize is the read unit.
const blockSize = 1 << 20

// Files compares the files at a and b, listing up to maxRanges differing
// ranges (maxRanges < 1 means 1).
func Files(a, b string, maxRanges int) (Result, error) {
	fa, err := os.Open(a)
	if err != nil {
		return Result{}, fmt.Errorf("compare: %w", err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return Result{}, fmt.Errorf("compare: %w", err)
	}
	defer fb.Close()
	sa, err := fa.Seek(0, io.SeekEnd)
	if err != nil {
		return Result{}, fmt.Errorf("compare %s: %w", a, err)
	}
	sb, err := fb.Seek(0, io.SeekEnd)
	if err != nil {
		return Result{}, fmt.Errorf("compare %s: %w", b, err)
	}
	res, err := Readers(fa, sa, fb, sb, maxRanges)
	if err != nil {
		return res, fmt.Errorf("compare %s and %s: %w", a, b, err)
	}
	return res, nil
}

// Readers compares two images of sizes sa and sb.
func Readers(a io.ReaderAt, sa int64, b io.ReaderAt, sb int64, maxRanges int) (Result, error) {
	maxRanges = max(maxRanges, 1)
	res := Result{SizeA: sa, SizeB: sb}
	c := collector{max: maxRanges}
	common := min(sa, sb)
	ba, bb := make([]byte, blockSize), make([]byte, blockSize)
	for off := int64(0); off < common && !c.full(); {
		n := int(min(blockSize, common-off))
		if err := readFull(a, ba[:n], off); err != nil {
			return res, err
		}
		if err := readFull(b, bb[:n], off); err != nil {
			return res, err
		}
		if !bytes.Equal(ba[:n], bb[:n]) {
			diffBlock(&c, ba[:n], bb[:n], off)
		}
		off += int64(n)
		res.Compared = off
	}
	if sa != sb && !c.full() {
		c.add(common, max(sa, sb)-common)
	}
	res.Ranges, res.More = c.done()
	res.Equal = len(res.Ranges) == 0
	return res, nil
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read at %d: %w", off, err)
}

// diffBlock adds the differing runs of one block.
func diffBlock(c *collector, a, b []byte, base int64) {
	for i := 0; i < len(a) && !c.full(); {
		if a[i] == b[i] {
			i++
			continue
		}
		j := i + 1
		for j < len(a) && a[j] != b[j] {
			j++
		}
		c.add(base+int64(i), int64(j-i))
		i = j
	}
}

// collector merges differences into ranges and stops after max+1 ranges
// (the extra one only tells that there are more).
type collector struct {
	max    int
	ranges []Range
}

func (c *collector) full() bool { return len(c.ranges) > c.max }

func (c *collector) add(off, n int64) {
	if k := len(c.ranges); k > 0 {
		last := &c.ranges[k-1]
		if off-(last.Off+last.Len) < mergeGap {
			last.Len = off + n - last.Off
			return
		}
	}
	c.ranges = append(c.ranges, Range{Off: off, Len: n})
}

func (c *collector) done() ([]Range, bool) {
	if len(c.ranges) > c.max {
		return c.ranges[:c.max], true
	}
	return c.ranges, false
}
