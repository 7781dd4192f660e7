package aimdst

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// genOp is one generated journal operation.
type genOp struct {
	kind   journal.Kind
	off    int64
	data   []byte // write
	length int64  // zero/trim
	marker journal.Record
	seal   bool // seal the open file after this op
}

// generated is a journal made by journal.Writer plus what destage must make
// of it.
type generated struct {
	volume string
	size   int64
	files  []string          // sealed files, in file-sequence order
	final  []byte            // the image after every record, in order
	snaps  map[string][]byte // snapshot label -> image at the marker
}

// randomOps makes n operations on a volume of size bytes: writes, zeros,
// trims, the given markers after the op with their index, file seals now and
// then.
func randomOps(rng *rand.Rand, size int64, n int, markers map[int]journal.Record) []genOp {
	var ops []genOp
	for i := 0; i < n; i++ {
		off := rng.Int64N(size - 1)
		length := 1 + rng.Int64N(min(8192, size-off))
		op := genOp{off: off, seal: rng.IntN(5) == 0}
		switch rng.IntN(6) {
		case 0:
			op.kind, op.length = journal.KindZero, length
		case 1:
			op.kind, op.length = journal.KindTrim, length
		default:
			op.kind, op.data = journal.KindWrite, make([]byte, length)
			for j := range op.data {
				op.data[j] = byte(rng.IntN(255) + 1)
			}
		}
		ops = append(ops, op)
		if m, ok := markers[i]; ok {
			ops = append(ops, genOp{kind: m.Kind, marker: m}) // mid-file: the hard case
		}
	}
	return ops
}

// writeJournal writes ops with journal.Writer into dir and returns the files
// and the expected images.
func writeJournal(t testing.TB, dir, volume string, size int64, ops []genOp) generated {
	t.Helper()
	g := generated{volume: volume, size: size, final: make([]byte, size), snaps: map[string][]byte{}}
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: volume, VolumeSize: size,
		MaxFileSize: 16 << 10, MaxAge: time.Hour, Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		switch op.kind {
		case journal.KindWrite:
			_, err = w.Write(op.off, op.data)
			copy(g.final[op.off:], op.data)
		case journal.KindZero, journal.KindTrim:
			_, err = w.Zero(op.off, op.length, op.kind == journal.KindTrim)
			clear(g.final[op.off : op.off+op.length])
		default:
			_, err = w.Marker(op.marker)
			if op.kind == journal.KindSnapshot {
				g.snaps[op.marker.Label] = bytes.Clone(g.final)
			}
		}
		if err == nil && op.seal {
			err = w.Seal()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); ; seq++ {
		p := filepath.Join(dir, journal.FileName(seq))
		if _, err := os.Stat(p); err != nil {
			break
		}
		g.files = append(g.files, p)
	}
	if len(g.files) == 0 {
		t.Fatal("journal writer sealed no files")
	}
	return g
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// offerOf returns the push offer of a journal file and its bytes.
func offerOf(t testing.TB, volume, path string) (push.Offer, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := journal.ParseFileName(filepath.Base(path))
	if err != nil {
		t.Fatal(err)
	}
	return push.FileOffer(volume, seq, b), b
}

// deliver hands a file to n as the push server would. upto < len(file) sends
// only that prefix and aborts (a lost connection). It returns Accept's or
// Commit's error; a duplicate is nil.
func deliver(t testing.TB, n *Node, volume, path string, upto int) error {
	t.Helper()
	o, b := offerOf(t, volume, path)
	s, err := n.Accept(context.Background(), push.Hello{Node: "test"}, o)
	if errors.Is(err, push.ErrDuplicate) {
		return nil
	}
	if err != nil {
		return err
	}
	off := s.Offset()
	if off > int64(len(b)) {
		t.Fatalf("resume offset %d beyond file of %d bytes", off, len(b))
	}
	end := min(max(int64(upto), off), int64(len(b)))
	for off < end { // in pieces, as frames arrive
		k := min(end-off, 3000)
		if _, err := s.Write(b[off : off+k]); err != nil {
			s.Abort()
			return err
		}
		off += k
	}
	if off < int64(len(b)) {
		s.Abort()
		return nil
	}
	return s.Commit(context.Background())
}

// deliverAll delivers every file in full, in the order given, failing the
// test on an error.
func deliverAll(t testing.TB, n *Node, volume string, files []string) {
	t.Helper()
	for _, p := range files {
		if err := deliver(t, n, volume, p, 1<<30); err != nil {
			t.Fatal(err)
		}
	}
}

// destageAll runs destage of volume until nothing is left or an error, and
// then closes the volume as the destage loop does when idle.
func destageAll(n *Node, volume string) error {
	v := n.vols[volume]
	for range 10000 {
		progressed, err := v.destageNext(context.Background())
		if err != nil || !progressed {
			v.releaseVolume(false)
			return err
		}
	}
	return errors.New("destage did not finish")
}
