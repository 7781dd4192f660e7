package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"

	"golang.org/x/sync/errgroup"
)

// startServer serves h on a loopback listener until the test ends.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Node == "" {
		s.Node = "dst"
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, Hello{Node: "src", Volumes: []string{"vol1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testFile(seed uint64, n int) ([]byte, Offer) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, Offer{Volume: "vol1", Name: fmt.Sprintf("%016d.aimj", seed), Size: int64(n), SHA256: sha256.Sum256(b)}
}

func TestRoundTripConcurrent(t *testing.T) {
	store := newMemStore()
	addr := startServer(t, &Server{Handler: store})
	c := dial(t, addr)
	if c.Peer().Node != "dst" {
		t.Errorf("peer node %q", c.Peer().Node)
	}
	sizes := []int{0, 1, MaxData - 1, MaxData, MaxData + 1, 3*MaxData + 17, 1 << 20}
	var g errgroup.Group
	want := map[string][]byte{}
	for i := range 40 {
		b, o := testFile(uint64(i+1), sizes[i%len(sizes)])
		want[key(o)] = b
		g.Go(func() error { return c.Push(context.Background(), o, bytes.NewReader(b)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for k, b := range want {
		got, ok := store.get(k)
		if !ok || !bytes.Equal(got, b) {
			t.Errorf("%s: stored %d bytes (ok=%v), want %d", k, len(got), ok, len(b))
		}
	}
}
