package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// relay forwards connections to a target, counts them, and can cut every
// connection it holds at once (a receiver restart, seen from the client).
type relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	count int
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	return newRelayAt(t, "127.0.0.1:0", target)
}

// newRelayAt is newRelay listening at addr.
func newRelayAt(t *testing.T, addr, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); r.cut(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.count++
			r.mu.Unlock()
			wg.Go(func() { io.Copy(out, in); out.Close() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// cut closes every connection relayed so far.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *relay) dials() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// TestRedialerLiveness: pushes share one connection; a connection cut
// while idle is replaced within the next push, which succeeds; a verdict
// (NACK) and a canceled push keep the connection; a bad offer never dials.
func TestRedialerLiveness(t *testing.T) {
	store := newMemStore()
	refuse := map[string]bool{"vol1/0000000000000004.aimj": true}
	store.commit = func(_ context.Context, k string) error {
		if refuse[k] {
			delete(refuse, k)
			return ErrBufferFull
		}
		return nil
	}
	rl := newRelay(t, startServer(t, &Server{Handler: store}))
	r := &Redialer{Addr: rl.addr(), Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}
	t.Cleanup(func() { r.Close() })
	ctx := context.Background()
	push := func(seq uint64) error {
		b, o := testFile(seq, 300<<10)
		return r.Push(ctx, o, bytes.NewReader(b))
	}
	for seq := uint64(1); seq <= 2; seq++ {
		if err := push(seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := rl.dials(); n != 1 {
		t.Fatalf("%d connections for two pushes, want 1", n)
	}
	rl.cut() // the receiver restarts while the connection is idle
	if err := push(3); err != nil {
		t.Fatalf("push after the connection was cut: %v", err)
	}
	if n := rl.dials(); n != 2 {
		t.Fatalf("%d connections after one cut, want 2", n)
	}
	var re *RemoteError
	if err := push(4); !errors.As(err, &re) || !errors.Is(err, ErrBufferFull) {
		t.Fatalf("refused push: %v, want the receiver's buffer-full verdict", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b, o := testFile(5, 300<<10)
	if err := r.Push(cctx, o, bytes.NewReader(b)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled push: %v", err)
	}
	for seq := uint64(4); seq <= 5; seq++ {
		if err := push(seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := rl.dials(); n != 2 {
		t.Fatalf("%d connections, want 2: a verdict or a canceled push dropped a good connection", n)
	}
	if err := push(5); err != nil { // already stored: a duplicate is success
		t.Fatalf("duplicate: %v", err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		want, o := testFile(seq, 300<<10)
		if got, ok := store.get(key(o)); !ok || !bytes.Equal(got, want) {
			t.Errorf("file %d not stored intact", seq)
		}
	}
	bad := Offer{Volume: "vol1", Name: "x", Seq: 1}
	if err := (&Redialer{Addr: "127.0.0.1:1", Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}).Push(ctx, bad, nil); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("bad offer: %v, want ErrBadOffer before any dial", err)
	}
}

// TestRedialerUnreachable: a next hop that is down is ErrUnavailable.
func TestRedialerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &Redialer{Addr: addr, Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}
	b, o := testFile(1, 10)
	if err := r.Push(context.Background(), o, bytes.NewReader(b)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("push to a closed port: %v, want ErrUnavailable", err)
	}
}

// TestRedialerLink: the link is unknown before the first dial, up once a
// connection is live, down (with the reason, at once) when the connection
// ends while idle, down while the next hop refuses dials, and up again
// when Keep dials it back; the error stays for the record.
func TestRedialerLink(t *testing.T) {
	rl := newRelay(t, startServer(t, &Server{Handler: newMemStore()}))
	r := &Redialer{Addr: rl.addr(), Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}
	t.Cleanup(func() { r.Close() })
	if st := r.Link(); st.State != LinkUnknown {
		t.Fatalf("before any dial: %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Keep(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })
	waitLink := func(want string) LinkState {
		t.Helper()
		var st LinkState
		testkit.WaitFor(t, 10*time.Second, "link "+want, func() bool { st = r.Link(); return st.State == want })
		return st
	}
	up := waitLink(LinkUp)
	if up.Failures != 0 || up.Since.IsZero() {
		t.Fatalf("up: %+v", up)
	}
	rl.ln.Close() // the next hop goes away: no new connection is accepted
	rl.cut()
	down := waitLink(LinkDown)
	if down.Error == "" || down.ErrorTime.IsZero() || !down.Since.After(up.Since) {
		t.Fatalf("down: %+v", down)
	}
	testkit.WaitFor(t, 10*time.Second, "failed redials counted", func() bool { return r.Link().Failures >= 2 })
	b, o := testFile(1, 10)
	if err := r.Push(context.Background(), o, bytes.NewReader(b)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("push while down: %v", err)
	}
	if st := r.Link(); st.State != LinkDown {
		t.Fatalf("after a failed push: %+v", st)
	}
	newRelayAt(t, rl.addr(), startServer(t, &Server{Handler: newMemStore()})) // back at the same address
	back := waitLink(LinkUp)
	if back.Error == "" || back.Failures != 0 {
		t.Fatalf("back up: %+v (the last error stays, failures reset)", back)
	}
}

// TestRedialerDialHoldsNoLock: a dial under way (a next hop that takes the
// TCP connection and never answers the TLS handshake) blocks neither Link,
// which src status and metrics read, nor a push whose context ends. The
// dial used to run under the Redialer's lock: status waited for it, up to
// the dial timeout, again and again while Keep redialed.
func TestRedialerDialHoldsNoLock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, silent
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	r := &Redialer{Addr: ln.Addr().String(), Hello: Hello{Node: "src"},
		Dial: DialConfig{Auth: clientAuth(), Timeout: 5 * time.Minute}}
	t.Cleanup(func() { r.Close() })
	dctx, endDial := context.WithCancel(context.Background())
	defer endDial()
	dialDone := make(chan error, 1)
	go func() {
		b, o := testFile(1, 10)
		dialDone <- r.Push(dctx, o, bytes.NewReader(b))
	}()
	select {
	case c := <-accepted:
		accepted <- c // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the push never dialed")
	}
	link := make(chan LinkState, 1)
	go func() { link <- r.Link() }()
	var waits []func() // receives of the calls that failed the test by waiting, once the dial ends
	select {
	case st := <-link:
		if st.State != LinkUnknown {
			t.Errorf("link during the first dial: %+v, want unknown", st)
		}
	case <-time.After(20 * time.Second):
		t.Error("Link waits for a dial under way (the dial holds the Redialer's lock)")
		waits = append(waits, func() { <-link })
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	pushed := make(chan error, 1)
	go func() {
		b, o := testFile(2, 10)
		pushed <- r.Push(cctx, o, bytes.NewReader(b))
	}()
	select {
	case err := <-pushed:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("push with an ended context during a dial: %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("a push whose context ended waits for another caller's dial")
		waits = append(waits, func() { <-pushed })
	}
	endDial()
	if err := <-dialDone; !errors.Is(err, ErrUnavailable) {
		t.Errorf("the dial ended by its context: %v", err)
	}
	for _, w := range waits {
		w()
	}
}
