package push

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"golang.org/x/sync/errgroup"
)

// discardHandler accepts every file and drops the bytes.
type discardHandler struct{}

func (discardHandler) Accept(context.Context, Hello, Offer) (Sink, error) { return &fakeSink{}, nil }

// BenchmarkPush measures push throughput over loopback: 4 MiB files, 4 in
// flight on one connection, a server that discards the bytes.
//
//	go test -run XXX -bench Push ./transport/push/
func BenchmarkPush(b *testing.B) {
	const size = 4 << 20
	data, _ := testFile(1, size)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, stop := startServerStopB(b, &Server{Node: "dst", Handler: discardHandler{}, Logger: log})
	defer stop()
	c, err := DialConfig{Auth: clientAuth(), Logger: log}.Dial(context.Background(), ln, Hello{Node: "src"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(size)
	b.ResetTimer()
	var g errgroup.Group
	g.SetLimit(4)
	for i := range b.N {
		o := Offer{Volume: "vol1", Name: fmt.Sprintf("%016d.aimj", i+1), Seq: uint64(i + 1), Size: size}
		g.Go(func() error { return c.Push(context.Background(), o, bytes.NewReader(data)) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
