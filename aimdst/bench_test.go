package aimdst

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/nbdserve"
	"github.com/aimwan/aimwan/journal"
)

// BenchmarkReceiveAndDestage stores 16 MiB of journal files (4 files of 1 MiB
// writes) in the destination buffer and destages them, with real fsyncs;
// MB/s is write bytes per second end to end.
func BenchmarkReceiveAndDestage(b *testing.B) {
	benchDestage(b, fileVolume, true, 4<<20)
}

// fileVolume is an empty file volume in b's temp folder.
func fileVolume(b *testing.B) string {
	vol := filepath.Join(b.TempDir(), "vol.img")
	os.WriteFile(vol, nil, 0o644)
	return vol
}

// BenchmarkDestage times destage alone (the files are received untimed) of
// the same 16 MiB, in journal files of 4 MiB and of 256 KiB (a sync and a
// cursor update per file), into the volume kinds side by side: a file, a
// qcow2 served by qemu-nbd (FLUSH is an fsync of the qcow2, as Sync is for a
// file), and nbdkit's memory plugin (the NBD round trips without a disk).
func BenchmarkDestage(b *testing.B) {
	kinds := []struct {
		name   string
		volume func(b *testing.B) func(*testing.B) string
	}{
		{"file", func(*testing.B) func(*testing.B) string { return fileVolume }},
		{"qemu-nbd-qcow2", func(b *testing.B) func(*testing.B) string {
			p := filepath.Join(b.TempDir(), "dr.qcow2")
			nbdserve.QemuImg(b, "create", "-q", "-f", "qcow2", p, "16M")
			srv := nbdserve.QemuNBD(b, p, "qcow2", "vol")
			return func(*testing.B) string { return srv.URI }
		}},
		{"nbdkit-memory", func(b *testing.B) func(*testing.B) string {
			srv := nbdserve.Nbdkit(b, "memory", "size=16M")
			return func(*testing.B) string { return srv.URI }
		}},
	}
	for _, fileSize := range []int64{4 << 20, 256 << 10} {
		for _, k := range kinds {
			b.Run(fmt.Sprintf("%s/files-%dKiB", k.name, fileSize>>10), func(b *testing.B) {
				benchDestage(b, k.volume(b), false, fileSize)
			})
		}
	}
}

// benchDestage receives (timed when receive is set) and destages 16 MiB of
// 256 KiB writes, in journal files of fileSize bytes, into the volume
// volume(b) names (called once per iteration).
func benchDestage(b *testing.B, volume func(b *testing.B) string, receive bool, fileSize int64) {
	const size = 16 << 20
	rng := rand.New(rand.NewPCG(1, 1))
	var ops []genOp
	const write = 256 << 10
	for off := int64(0); off < size; off += write {
		data := make([]byte, write)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ops = append(ops, genOp{kind: journal.KindWrite, off: off, data: data, seal: (off+write)%fileSize == 0})
	}
	jdir := b.TempDir()
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: jdir, Volume: "vol", VolumeSize: size,
		MaxFileSize: 2 * fileSize, MaxAge: time.Hour, Logger: discardLog()})
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
		n, err := NewNode(Config{BufferDir: filepath.Join(root, "buf"), Volumes: []VolumeConfig{{Name: "vol", Path: volume(b)}}, Logger: discardLog()})
		if err != nil {
			b.Fatal(err)
		}
		if receive {
			b.StartTimer()
		}
		for _, p := range files {
			if err := deliver(b, n, "vol", p, 1<<30); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := destageAll(n, "vol"); err != nil {
			b.Fatal(err)
		}
	}
}
