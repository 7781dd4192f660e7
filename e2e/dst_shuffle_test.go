package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// capture is a push.Handler that keeps every file it is offered in memory
// and acks it: it stands in for the destination so a test can re-deliver the
// source node's real journal files in any order.
type capture struct {
	mu    sync.Mutex
	files map[string][]byte // name -> bytes
}

func (c *capture) Accept(ctx context.Context, peer push.Hello, o push.Offer) (push.Sink, error) {
	return &captureSink{c: c, name: o.Name}, nil
}

type captureSink struct {
	c    *capture
	name string
	buf  bytes.Buffer
}

func (s *captureSink) Offset() int64               { return 0 }
func (s *captureSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *captureSink) Abort()                      {}
func (s *captureSink) Commit(ctx context.Context) error {
	s.c.mu.Lock()
	s.c.files[s.name] = bytes.Clone(s.buf.Bytes())
	s.c.mu.Unlock()
	return nil
}

// hasMarker reports whether a captured file holds the snapshot marker label.
func (c *capture) hasMarker(label string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, b := range c.files {
		f, err := journal.Parse(name, b)
		if err != nil {
			continue
		}
		for _, r := range f.Records {
			if r.Kind == journal.KindSnapshot && r.Label == label {
				return true
			}
		}
	}
	return false
}

// TestSrcFilesShuffledDuplicated: qemu-img writes an image through the
// source node, whose journal files (with a snapshot marker) are captured and
// then pushed to the destination node shuffled, each two or three times; the
// snapshot must equal the image.
func TestSrcFilesShuffledDuplicated(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 11)
	capt := &capture{files: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &push.Server{Node: "capture", Handler: capt, Auth: Keys.Dst.Auth(t, Keys.Src)}
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-done
	}()
	src := StartSrc(t, ln.Addr().String(), []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"}, "--file-size", "256KiB")
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	Eventually(t, 60*time.Second, "the marker's file to be pushed", func() (bool, error) { return capt.hasMarker("s1"), nil })
	src.Stop()

	capt.mu.Lock()
	var names []string
	for name := range capt.files {
		names = append(names, name)
	}
	sort.Strings(names)
	jdir := filepath.Join(dir, "captured")
	os.MkdirAll(jdir, 0o755)
	var order []string
	for i, name := range names {
		p := filepath.Join(jdir, name)
		if err := os.WriteFile(p, capt.files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		order = append(order, p, p)
		if i%2 == 0 {
			order = append(order, p)
		}
	}
	capt.mu.Unlock()
	if len(names) < 4 {
		t.Fatalf("only %d journal files captured", len(names))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pushAll(t, dst.Listen, "v", order, 3)
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 60*time.Second), gen)
	Eventually(t, 30*time.Second, "every file destaged", func() (bool, error) {
		v := dst.Volume(t, "v")
		return v.DestagedFile == uint64(len(names)) && v.FilesWaiting == 0, nil
	})
	SameFile(t, filepath.Join(dir, "dst-v.img"), gen)
}
