package aimsrc

import (
	"errors"
	"math/bits"
	"os"
	"path/filepath"
	"testing"
)

// bitmapSeeds are bitmap files: valid (empty, some bits, every bit), for
// another size, cut short, with bits past the last region, garbage.
func bitmapSeeds(t testing.TB) [][]byte {
	dir := t.TempDir()
	valid := func(size, gran int64, set func(*bitmap)) []byte {
		p := filepath.Join(dir, "seed")
		os.Remove(p)
		b, err := openBitmap(p, size, gran)
		if err != nil {
			t.Fatal(err)
		}
		set(b)
		b.close()
		data, _ := os.ReadFile(p)
		return data
	}
	some := valid(1<<20, 64<<10, func(b *bitmap) { b.set(0, 1); b.set(300<<10, 200<<10) })
	all := valid(1<<20, 64<<10, func(b *bitmap) { b.set(0, 1<<20) })
	trailing := append([]byte(nil), valid(640<<10, 64<<10, func(*bitmap) {})...)
	trailing[len(trailing)-1] = 0xff // regions 8..15 of 10: bits past the last region
	return [][]byte{nil, valid(1<<20, 64<<10, func(*bitmap) {}), some, all, some[:len(some)-1], trailing,
		valid(4<<20, 4096, func(b *bitmap) { b.set(5000, 1) }), []byte("AIMDIRT1 but not really a bitmap file at all")}
}

// FuzzBitmapLoad: openBitmap never panics on any file content; it refuses a
// file whose header does not fit and that holds set bits, and otherwise
// returns a bitmap whose count matches its bits, whose bits all lie inside
// the volume, and that empties completely when every region is cleared (so
// resync can always finish).
func FuzzBitmapLoad(f *testing.F) {
	for _, s := range bitmapSeeds(f) {
		f.Add(s, uint32(1<<20-1), uint8(4))
	}
	f.Add(bitmapSeeds(f)[5], uint32(640<<10-1), uint8(4)) // the volume the trailing bits' file was made for
	f.Fuzz(func(t *testing.T, data []byte, size uint32, granShift uint8) {
		vsize := int64(size%(64<<20)) + 1
		gran := int64(4096) << (granShift % 6)
		p := filepath.Join(t.TempDir(), "v.dirty")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := openBitmap(p, vsize, gran)
		if err != nil {
			if !errors.Is(err, ErrBitmap) {
				t.Fatalf("error %v does not wrap ErrBitmap", err)
			}
			return
		}
		defer b.close()
		var n int64
		for i, c := range b.bits {
			n += int64(bits.OnesCount8(c))
			for k := 0; k < 8; k++ {
				if c&(1<<k) != 0 && int64(i)*8+int64(k) >= b.nbits {
					t.Fatalf("bit %d set past the last region %d", int64(i)*8+int64(k), b.nbits)
				}
			}
		}
		if n != b.count.Load() {
			t.Fatalf("count %d, bits say %d", b.count.Load(), n)
		}
		for off, seen := int64(0), int64(0); ; seen++ {
			o, l, ok := b.next(off, 1<<20)
			if !ok {
				break
			}
			if o < off || l <= 0 || o+l > vsize || seen > b.nbits {
				t.Fatalf("next(%d) = %d+%d on a volume of %d", off, o, l, vsize)
			}
			off = o + l
		}
		b.clear(0, vsize)
		if b.count.Load() != 0 || b.dirtyBytes() != 0 {
			t.Fatalf("%d regions still dirty after clearing the whole volume", b.count.Load())
		}
	})
}

// FuzzActivityLog: an activity log file of any content loads or is refused;
// a loaded one turns exactly its set extents into dirty regions and is
// empty afterwards; then any sequence of writes, flush starts and flush
// ends keeps the invariant that a flush covering every write leaves it
// empty.
func FuzzActivityLog(f *testing.F) {
	dir := f.TempDir()
	al, err := openActivityLog(dir, "seed", 64<<20)
	if err != nil {
		f.Fatal(err)
	}
	al.activate(5<<20, 1)
	al.activate(40<<20, 9<<20)
	al.bits.close()
	seed, _ := os.ReadFile(filepath.Join(dir, "seed.al"))
	f.Add(seed, []byte{0, 1, 2, 0, 3, 1, 2})
	f.Add([]byte(nil), []byte{0, 0, 0, 1, 2})
	f.Add(seed[:10], []byte{})
	f.Fuzz(func(t *testing.T, file, ops []byte) {
		const size = 64 << 20
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "v.al"), file, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := openActivityLog(dir, "v", size)
		if err != nil {
			if !errors.Is(err, ErrBitmap) {
				t.Fatalf("error %v does not wrap ErrBitmap", err)
			}
			return
		}
		defer a.close()
		dirty, err := openBitmap(filepath.Join(dir, "v.dirty"), size, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		defer dirty.close()
		active := a.bits.count.Load()
		n, err := a.recover(dirty)
		if err != nil || n != active || a.bits.count.Load() != 0 {
			t.Fatalf("recover: %d extents (%d were active), %v; %d left", n, active, err, a.bits.count.Load())
		}
		if dirty.dirtyBytes() != active*alExtent && dirty.dirtyBytes() > size {
			t.Fatalf("%d dirty bytes for %d active extents", dirty.dirtyBytes(), active)
		}
		var open []uint32 // flushes begun, not settled
		for i := 0; i < len(ops); i++ {
			switch ops[i] % 3 {
			case 0:
				off := int64(0)
				if i+1 < len(ops) {
					i++
					off = int64(ops[i]) * (size / 256)
				}
				if err := a.activate(off, 1+off%(8<<20)); err != nil {
					t.Fatal(err)
				}
			case 1:
				open = append(open, a.begin())
			case 2:
				if len(open) > 0 {
					a.settle(open[0])
					open = open[1:]
				}
			}
		}
		a.settle(a.begin()) // a flush after every write covers them all
		if a.bits.count.Load() != 0 {
			t.Fatalf("%d extents still active after a flush covering every write", a.bits.count.Load())
		}
	})
}
