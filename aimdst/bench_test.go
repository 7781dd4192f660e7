package aimdst

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
)

// BenchmarkReceiveAndDestage stores 16 MiB of journal files (4 files of 1 MiB
// writes) in the destination buffer and destages them, with real fsyncs;
// MB/s is write bytes per second end to end.
func BenchmarkReceiveAndDestage(b *testing.B) {
	const size = 16 << 20
	rng := rand.New(rand.NewPCG(1, 1))
	var ops []genOp
	for off := int64(0); off < size; off += 1 << 20 {
		data := make([]byte, 1<<20)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ops = append(ops, genOp{kind: journal.KindWrite, off: off, data: data, seal: off%(4<<20) == 3<<20})
	}
	jdir := b.TempDir()
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: jdir, Volume: "vol", VolumeSize: size,
		MaxFileSize: 4 << 20, MaxAge: time.Hour, Logger: discardLog()})
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range ops {
		if _, err := w.Write(op.off, op.data); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	files, _ := filepath.Glob(filepath.Join(jdir, "*"+journal.Ext))
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := b.TempDir()
		vol := filepath.Join(root, "vol.img")
		os.WriteFile(vol, nil, 0o644)
		n, err := NewNode(Config{BufferDir: filepath.Join(root, "buf"), Volumes: []VolumeConfig{{Name: "vol", Path: vol}}, Logger: discardLog()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, p := range files {
			if err := deliver(b, n, "vol", p, 1<<30); err != nil {
				b.Fatal(err)
			}
		}
		if err := destageAll(n, "vol"); err != nil {
			b.Fatal(err)
		}
	}
}
