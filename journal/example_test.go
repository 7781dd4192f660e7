package journal_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aimwan/aimwan/journal"
)

// A source node appends writes and markers, syncs on FLUSH, and ships the
// files that OnSeal reports; the receiver validates each file with
// ParseExpect (or ReadFile) before using it.
func ExampleOpenWriter() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)

	sealed := make(chan string, 16)
	w, recovered, err := journal.OpenWriter(journal.WriterConfig{
		Dir: dir, Volume: "db1", VolumeSize: 1 << 30,
		OnSeal: func(f journal.SealedFile) { sealed <- f.Name }, // must not call w
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("recovered:", len(recovered)) // redo these into the image after a crash

	w.Write(4096, []byte("hello"))
	w.Zero(0, 4096, false)
	w.Marker(journal.Record{Kind: journal.KindSnapshot, Label: "nightly"})
	if err := w.Sync(); err != nil { // FLUSH: durable, not yet sealed
		fmt.Println(err)
	}
	w.Close() // seals what is pending

	name := <-sealed
	b, _ := os.ReadFile(filepath.Join(dir, name))
	f, err := journal.ParseExpect(name, b, "db1")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range f.Records {
		fmt.Printf("%d %s off=%d len=%d label=%q data=%q\n", r.Seq, r.Kind, r.Offset, r.Length, r.Label, f.Data(r))
	}
	off, n, _ := journal.Layout(b)
	fmt.Println(name, "payload region", off, n)
	// Output:
	// recovered: 0
	// 1 write off=4096 len=5 label="" data="hello"
	// 2 zero off=0 len=4096 label="" data=""
	// 3 snapshot off=0 len=0 label="nightly" data=""
	// 0000000000000001.aimj payload region 128 5
}
