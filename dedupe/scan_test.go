package dedupe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// chunkReader returns at most n bytes a read, so reads end anywhere.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestScanMatchesSplit(t *testing.T) {
	// Scanning through an 8 MiB buffer, whatever sizes the reads return,
	// gives exactly the pieces of cutting the whole image at once, in order
	// and covering it; the chunk bytes handed out are the image's.
	g := newImageGen(7)
	img := g.template(19<<20 + 12345)
	clear(img[scanBuf-10000 : scanBuf+10000]) // a zero run across a buffer boundary
	clear(img[2*scanBuf-100 : 2*scanBuf])     // zeros right before one
	clear(img[len(img)-9000:])                // a zero run at the end
	p, _ := Params{}.Normalize()
	want, _ := newSplitter(p).split(nil, img)
	for _, rs := range []int{1 << 30, 1 << 20, 65537} {
		var got []piece
		off := 0
		st, err := Scan(context.Background(), chunkReader{bytes.NewReader(img), rs}, Params{}, func(pc ScanPiece) error {
			switch {
			case pc.Data == nil:
				got = append(got, piece{off: off, n: pc.Zero, zero: true})
				off += pc.Zero
			case pc.Zero != 0:
				t.Fatalf("piece with data and a zero length %d", pc.Zero)
			default:
				if !bytes.Equal(pc.Data, img[off:off+len(pc.Data)]) {
					t.Fatalf("chunk at %d: bytes differ from the image", off)
				}
				got = append(got, piece{off: off, n: len(pc.Data)})
				off += len(pc.Data)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("reads of %d: %d pieces, want %d", rs, len(got), len(want))
		}
		var zeros int64
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("reads of %d: piece %d is %+v, want %+v", rs, i, got[i], want[i])
			}
			if want[i].zero {
				zeros += int64(want[i].n)
			}
		}
		if st.Bytes != int64(len(img)) || st.ZeroBytes != zeros || off != len(img) {
			t.Fatalf("stats %+v (covered %d), want %d bytes, %d zero", st, off, len(img), zeros)
		}
	}
}

func TestScanErrors(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	_, err := Scan(context.Background(), bytes.NewReader(newImageGen(1).template(1<<20)), Params{}, func(ScanPiece) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("callback error: %v after %d calls", err, calls)
	}
	broken := errors.New("disk")
	_, err = Scan(context.Background(), io.MultiReader(bytes.NewReader(make([]byte, 100)), errReader{broken}), Params{}, func(ScanPiece) error { return nil })
	if !errors.Is(err, broken) {
		t.Errorf("read error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err = Scan(ctx, bytes.NewReader(nil), Params{}, func(ScanPiece) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if _, err = Scan(context.Background(), bytes.NewReader(nil), Params{AvgSize: 3000}, nil); !errors.Is(err, ErrParams) {
		t.Errorf("bad params: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
