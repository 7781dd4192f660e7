package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/internal/testkit"
)

// startServer serves s on a loopback listener until the test ends; Serve
// must then return nil.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	addr, stop := startServerStop(t, s)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

// startServerStop serves s and returns a function that cancels Serve and
// returns its result.
func startServerStop(t *testing.T, s *Server) (string, func() error) { return startServerStopB(t, s) }

func startServerStopB(t testing.TB, s *Server) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Node == "" {
		s.Node = "dst"
	}
	if s.Auth.Identity == nil {
		s.Auth = serverAuth()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	return ln.Addr().String(), func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(10 * time.Second):
				serveErr = errors.New("Serve did not return within 10s of cancel")
			}
		})
		return serveErr
	}
}

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, Hello{Node: "src", Volumes: []string{"vol1"}}, clientAuth())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testFile returns n pseudo-random bytes and their offer.
func testFile(seed uint64, n int) ([]byte, Offer) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b, Offer{Volume: "vol1", Name: fmt.Sprintf("%016d.aimj", seed), Seq: seed, Size: int64(n), SHA256: sha256.Sum256(b)}
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
	if _, _, aborts, _ := store.counts(); aborts != 0 {
		t.Errorf("%d sinks aborted, want 0", aborts)
	}
}

func TestResumeAfterCut(t *testing.T) {
	store := newMemStore()
	addr := startServer(t, &Server{Handler: store})
	const size = 2<<20 + 12345
	b, o := testFile(7, size)

	c := dial(t, testkit.Cutter(t, addr, 900<<10))
	err := c.Push(context.Background(), o, bytes.NewReader(b))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("push through a cut connection: %v, want ErrUnavailable", err)
	}
	testkit.WaitFor(t, 10*time.Second, "sink aborted", func() bool { _, _, aborts, _ := store.counts(); return aborts == 1 })
	_, _, _, first := store.counts()
	if first == 0 || first >= size {
		t.Fatalf("first attempt stored %d bytes, want a part of %d", first, size)
	}

	c2 := dial(t, addr)
	if err := c2.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
		t.Fatalf("resumed push: %v", err)
	}
	got, ok := store.get(key(o))
	if !ok || !bytes.Equal(got, b) {
		t.Fatalf("resumed file differs (ok=%v, %d bytes)", ok, len(got))
	}
	_, _, _, total := store.counts()
	if total != size {
		t.Errorf("bytes received over both attempts = %d, want %d (no byte sent twice)", total, size)
	}
	if store.resumes[1] != first {
		t.Errorf("second attempt resumed at %d, want %d", store.resumes[1], first)
	}
}

func TestDuplicateAck(t *testing.T) {
	store := newMemStore()
	addr := startServer(t, &Server{Handler: store})
	c := dial(t, addr)
	b, o := testFile(3, 100<<10)
	for i := range 2 {
		if err := c.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	accepts, dups, _, received := store.counts()
	if accepts != 2 || dups != 1 || received != int64(len(b)) {
		t.Errorf("accepts=%d dups=%d received=%d, want 2, 1, %d", accepts, dups, received, len(b))
	}
	// ErrDuplicate from Commit is an ack too.
	h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) {
		return &fakeSink{commit: func(context.Context) error { return ErrDuplicate }}, nil
	}}
	c2 := dial(t, startServer(t, &Server{Handler: h}))
	if err := c2.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
		t.Errorf("commit-time duplicate: %v, want ack", err)
	}
}

func TestNackCodes(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		atEnd bool // returned by Commit instead of Accept
		want  error
		code  Code
	}{
		{"buffer full", fmt.Errorf("vol1: %w", ErrBufferFull), false, ErrBufferFull, CodeBufferFull},
		{"unknown volume", ErrUnknownVolume, false, ErrUnknownVolume, CodeUnknownVolume},
		{"bad offer", ErrBadOffer, false, ErrBadOffer, CodeBadOffer},
		{"unavailable", ErrUnavailable, false, ErrUnavailable, CodeUnavailable},
		{"other", errors.New("disk on fire"), false, ErrInternal, CodeInternal},
		{"checksum at commit", ErrChecksum, true, ErrChecksum, CodeChecksum},
		{"buffer full at commit", ErrBufferFull, true, ErrBufferFull, CodeBufferFull},
		{"conflict at commit", fmt.Errorf("file of another stream: %w", ErrConflict), true, ErrConflict, CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aborted := make(chan struct{}, 1)
			h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) {
				if !tt.atEnd {
					return nil, tt.err
				}
				return &fakeSink{
					commit: func(context.Context) error { return tt.err },
					abort:  func() { aborted <- struct{}{} },
				}, nil
			}}
			c := dial(t, startServer(t, &Server{Handler: h}))
			b, o := testFile(1, 1000)
			err := c.Push(context.Background(), o, bytes.NewReader(b))
			var re *RemoteError
			if !errors.Is(err, tt.want) || !errors.As(err, &re) || re.Code != tt.code {
				t.Fatalf("Push = %v, want remote %s", err, tt.code)
			}
			if CodeOf(err) != tt.code {
				t.Errorf("CodeOf = %s, want %s", CodeOf(err), tt.code)
			}
			select {
			case <-aborted:
				t.Errorf("sink aborted after Commit")
			default:
			}
		})
	}
}

func TestCodeMapping(t *testing.T) {
	if CodeOf(nil) != CodeOK || ErrorOf(CodeOK, "x") != nil {
		t.Fatal("nil must map to CodeOK and back")
	}
	for _, ce := range codeErrs {
		err := ErrorOf(ce.code, "msg")
		if !errors.Is(err, ce.err) || CodeOf(err) != ce.code || CodeOf(fmt.Errorf("ctx: %w", ce.err)) != ce.code {
			t.Errorf("code %s does not round-trip", ce.code)
		}
	}
	if err := ErrorOf(999, "future"); !errors.Is(err, ErrInternal) || CodeOf(err) != CodeInternal {
		t.Errorf("unknown code: %v", err)
	}
	if CodeOf(errors.New("x")) != CodeInternal {
		t.Error("plain error must map to internal")
	}
}

func TestServerCancelClosesCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	committing, receiving := make(chan struct{}), make(chan struct{})
	var commitEnded, aborted sync.WaitGroup
	commitEnded.Add(1)
	aborted.Add(1)
	h := &fakeHandler{accept: func(_ context.Context, _ Hello, o Offer) (Sink, error) {
		if o.Name == "0000000000000001.aimj" {
			return &fakeSink{commit: func(ctx context.Context) error {
				defer commitEnded.Done()
				close(committing)
				<-ctx.Done() // a commit that only ends with the connection
				return ctx.Err()
			}}, nil
		}
		var once sync.Once
		return &fakeSink{
			write: func(p []byte) (int, error) { once.Do(func() { close(receiving) }); return len(p), nil },
			abort: aborted.Done,
		}, nil
	}}
	addr, stop := startServerStop(t, &Server{Handler: h})
	c, err := Dial(context.Background(), addr, Hello{Node: "src"}, clientAuth())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pushErr := make(chan error, 2)
	b, o := testFile(1, 1000)
	go func() { pushErr <- c.Push(context.Background(), o, bytes.NewReader(b)) }()
	// A second file stuck mid-transfer: its source blocks after one frame.
	o2 := Offer{Volume: "vol1", Name: "0000000000000002.aimj", Seq: 2, Size: 10 << 20}
	unblock := make(chan struct{})
	go func() { pushErr <- c.Push(context.Background(), o2, stallingReader(unblock)) }()
	<-committing
	<-receiving
	if err := stop(); err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	commitEnded.Wait()
	aborted.Wait()
	close(unblock)
	for range 2 {
		select {
		case err := <-pushErr:
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("push during shutdown: %v, want ErrUnavailable", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("push did not fail after server shutdown")
		}
	}
	c.Close()
	testkit.WaitFor(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// stallingReader serves the first frame at once and blocks later reads until
// unblock is closed.
type stallingReader chan struct{}

func (r stallingReader) ReadAt(p []byte, off int64) (int, error) {
	if off > 0 {
		<-r
	}
	return len(p), nil
}

func TestPushCancelAbortsSink(t *testing.T) {
	aborted := make(chan struct{})
	written := make(chan struct{}, 1)
	h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) {
		return &fakeSink{
			write: func(p []byte) (int, error) {
				select {
				case written <- struct{}{}:
				default:
				}
				return len(p), nil
			},
			abort: func() { close(aborted) },
		}, nil
	}}
	c := dial(t, startServer(t, &Server{Handler: h}))
	o := Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: 100 << 20} // never completes
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Push(ctx, o, ctxReader{ctx}) }()
	<-written
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled push: %v", err)
	}
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("sink not aborted after the sender canceled")
	}
	// The connection stays usable.
	b2, o2 := testFile(2, 10)
	if err := c.Push(context.Background(), o2, bytes.NewReader(b2)); err != nil {
		t.Fatalf("push after a canceled push: %v", err)
	}
}

// ctxReader serves the first frame at once; later reads wait for ctx to end
// and fail with its error, so a push is still running when the test cancels
// it, however slow the machine.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) ReadAt(p []byte, off int64) (int, error) {
	if off > 0 {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	return len(p), nil
}

func TestKeepaliveDuringLongCommit(t *testing.T) {
	h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) {
		return &fakeSink{commit: func(ctx context.Context) error {
			select { // longer than both idle timeouts: only pings keep the connection
			case <-time.After(1200 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}, nil
	}}
	// The idle timeout is 25 keepalives: a loaded machine may stall the
	// writers for a while without the test failing.
	addr := startServer(t, &Server{Handler: h, KeepAlive: 20 * time.Millisecond, IdleTimeout: 500 * time.Millisecond})
	c, err := DialConfig{Auth: clientAuth(), KeepAlive: 20 * time.Millisecond, IdleTimeout: 500 * time.Millisecond}.Dial(
		context.Background(), addr, Hello{Node: "src"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, o := testFile(1, 10)
	if err := c.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
		t.Fatalf("push with a long commit: %v", err)
	}
}

func TestTooManyFilesInFlight(t *testing.T) {
	release := make(chan struct{})
	h := &fakeHandler{accept: func(context.Context, Hello, Offer) (Sink, error) {
		return &fakeSink{commit: func(ctx context.Context) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}, nil
	}}
	c := dial(t, startServer(t, &Server{Handler: h, MaxFiles: 2}))
	errc := make(chan error, 3)
	for i := range 3 {
		b, o := testFile(uint64(i+1), 10)
		go func() { errc <- c.Push(context.Background(), o, bytes.NewReader(b)) }()
	}
	if err := <-errc; !errors.Is(err, ErrBufferFull) {
		t.Fatalf("third file: %v, want ErrBufferFull", err)
	}
	close(release)
	for range 2 {
		if err := <-errc; err != nil {
			t.Errorf("push: %v", err)
		}
	}
}

// TestCommitDoesNotBlockOtherFiles: while one file's Commit waits, another
// file on the same connection is received and acked.
func TestCommitDoesNotBlockOtherFiles(t *testing.T) {
	secondAcked, committing := make(chan struct{}), make(chan struct{})
	h := &fakeHandler{accept: func(_ context.Context, _ Hello, o Offer) (Sink, error) {
		if o.Name == "0000000000000001.aimj" {
			return &fakeSink{commit: func(ctx context.Context) error {
				close(committing)
				select {
				case <-secondAcked:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}, nil
		}
		return &fakeSink{}, nil
	}}
	c := dial(t, startServer(t, &Server{Handler: h}))
	b1, o1 := testFile(1, 3*MaxData)
	first := make(chan error, 1)
	go func() { first <- c.Push(context.Background(), o1, bytes.NewReader(b1)) }()
	<-committing
	b2, o2 := testFile(2, 3*MaxData)
	if err := c.Push(context.Background(), o2, bytes.NewReader(b2)); err != nil {
		t.Fatalf("second file while the first commits: %v", err)
	}
	close(secondAcked)
	if err := <-first; err != nil {
		t.Fatalf("first file: %v", err)
	}
}

// gatedStore is a Handler whose sinks' Write blocks until open is closed,
// so the connection's reader loop stops reading.
type gatedStore struct {
	open    chan struct{}
	blocked chan struct{} // gets a value (if there is room) when a Write starts waiting
	aborted chan string   // names of aborted files (if there is room)
	accepts atomic.Int32
}

func newGatedStore() *gatedStore {
	return &gatedStore{open: make(chan struct{}), blocked: make(chan struct{}, 1), aborted: make(chan string, 64)}
}

func (g *gatedStore) Accept(_ context.Context, _ Hello, o Offer) (Sink, error) {
	g.accepts.Add(1)
	return &fakeSink{
		write: func(p []byte) (int, error) {
			select {
			case g.blocked <- struct{}{}:
			default:
			}
			<-g.open
			return len(p), nil
		},
		abort: func() {
			select {
			case g.aborted <- o.Name:
			default:
			}
		},
	}, nil
}

// smallBufListener shrinks the socket buffers of accepted connections, so
// that a peer that stops reading blocks the sender soon and for good (no
// window autotuning).
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(64 << 10) // room for a few TLS records (16 KiB each)
	}
	return nc, err
}

// startStalledServer serves h on a listener with small socket buffers and
// dials it with a small send buffer.
func startStalledServer(t *testing.T, h Handler) *Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&Server{Node: "dst", Handler: h, Auth: serverAuth()}).Serve(ctx, smallBufListener{ln})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c := dial(t, ln.Addr().String())
	if err := c.w.raw.(*net.TCPConn).SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCancelWhileConnectionStalls: a push whose data cannot leave (the
// server stopped reading) returns at once when its ctx ends, rather than
// when the connection times out.
func TestCancelWhileConnectionStalls(t *testing.T) {
	g := newGatedStore()
	c := startStalledServer(t, g)
	defer close(g.open)                                                                // before the server's cleanup
	o := Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: 200 << 20} // more than socket buffers hold
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Push(ctx, o, zeroReader{}) }()
	// The server stops reading; then both data buffers of the push wait in
	// the writer queue (for a few polls in a row): the writer is blocked on
	// the full socket.
	<-g.blocked
	steady := 0
	testkit.WaitFor(t, 10*time.Second, "the push's buffers to wait in the writer queue", func() bool {
		if len(c.w.out) == 2 {
			steady++
		} else {
			steady = 0
		}
		return steady >= 5
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled push: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("canceled push did not return while the connection stalls")
	}
}

// zeroReader reads as zeros at once.
type zeroReader struct{}

func (zeroReader) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	return len(p), nil
}

// TestCancelWithFullQueueAbortsSink: a push canceled while the writer queue
// is full (many files in flight on a busy connection) still ends its file on
// the server: a file left half-received on a live connection would hold back
// a resend of it there.
func TestCancelWithFullQueueAbortsSink(t *testing.T) {
	g := newGatedStore()
	var once sync.Once
	open := func() { once.Do(func() { close(g.open) }) }
	c := startStalledServer(t, g)
	defer open() // before the server's cleanup
	// Data flows only once every file is accepted, so that all of them
	// queue frames when the server stops reading.
	const files = 10
	start := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	victim := Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: 200 << 20}
	errc := make(chan error, 1)
	go func() { errc <- c.Push(ctx, victim, gatedReader{start, zeroReader{}}) }()
	var others errgroup.Group
	for i := range files - 1 {
		b, o := testFile(uint64(i+2), 1<<20)
		others.Go(func() error { return c.Push(context.Background(), o, gatedReader{start, bytes.NewReader(b)}) })
	}
	testkit.WaitFor(t, 10*time.Second, "every file to be accepted", func() bool { return g.accepts.Load() == files })
	close(start)
	<-g.blocked
	steady := 0
	testkit.WaitFor(t, 10*time.Second, "the writer queue to fill", func() bool {
		if len(c.w.out) == cap(c.w.out) {
			steady++
		} else {
			steady = 0
		}
		return steady >= 5
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled push: %v, want context.Canceled", err)
	}
	open()
	if err := others.Wait(); err != nil {
		t.Fatalf("other pushes on the connection: %v", err)
	}
	select {
	case name := <-g.aborted:
		if name != victim.Name {
			t.Fatalf("aborted %s, want %s", name, victim.Name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sink of the canceled push not aborted while the connection lives")
	}
}

// gatedReader reads from r once start is closed.
type gatedReader struct {
	start <-chan struct{}
	r     io.ReaderAt
}

func (g gatedReader) ReadAt(p []byte, off int64) (int, error) {
	<-g.start
	return g.r.ReadAt(p, off)
}
