package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// DialConfig tunes a client connection. The zero value means the defaults.
type DialConfig struct {
	Auth        Auth          // mutual TLS: this node's identity and the pinned servers (required)
	Timeout     time.Duration // TCP connect, TLS handshake and HELLO; default 10s
	KeepAlive   time.Duration // PING after this long without writing; default 15s
	IdleTimeout time.Duration // connection lost after this long without reading; default 60s
	MaxInFlight int           // files pushed at once (more Push calls wait); default 16
	Logger      *slog.Logger  // nil: slog.Default()
}

func (d DialConfig) withDefaults() DialConfig {
	if d.Timeout == 0 {
		d.Timeout = DefaultHandshake
	}
	if d.KeepAlive == 0 {
		d.KeepAlive = DefaultKeepAlive
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = DefaultIdleTimeout
	}
	if d.MaxInFlight == 0 {
		d.MaxInFlight = 16
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}

func (d DialConfig) validate() error {
	if err := d.Auth.validate(); err != nil {
		return fmt.Errorf("push dial: %w", err)
	}
	if d.Timeout < 0 || d.KeepAlive < 0 || d.IdleTimeout < 0 || d.MaxInFlight < 0 {
		return errors.New("push dial: negative limit")
	}
	if d.KeepAlive >= d.IdleTimeout {
		return fmt.Errorf("push dial: KeepAlive %v must be shorter than IdleTimeout %v", d.KeepAlive, d.IdleTimeout)
	}
	return nil
}

// Client is one push connection. Push is safe for concurrent use: several
// files are in flight at once, multiplexed by file id.
type Client struct {
	addr string
	peer Hello
	w    *wire
	log  *slog.Logger
	sem  chan struct{} // MaxInFlight tokens

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan Msg
	cancels []uint64      // file ids given up, CANCEL not queued yet
	kick    chan struct{} // cancels grew (capacity 1)

	cancel context.CancelFunc
	ctx    context.Context // the connection's context (ends with it)
	done   chan struct{}   // closed when the loops have ended
	err    error           // why the connection ended (set before done closes)
}

// Dial connects to a push server with the default DialConfig and auth.
func Dial(ctx context.Context, addr string, hello Hello, auth Auth) (*Client, error) {
	return DialConfig{Auth: auth}.Dial(ctx, addr, hello)
}

// Dial connects to addr, runs the TLS handshake (the server must be pinned,
// and must pin this node), exchanges hellos, and starts the connection's
// loops. Connection failures satisfy errors.Is(err, ErrUnavailable); a
// refused version satisfies errors.Is(err, ErrVersion); a server whose
// fingerprint is not pinned satisfies errors.Is(err, identity.ErrUnknownPeer).
func (d DialConfig) Dial(ctx context.Context, addr string, hello Hello) (*Client, error) {
	d = d.withDefaults()
	if err := d.validate(); err != nil {
		return nil, err
	}
	if err := validateHello(hello); err != nil {
		return nil, fmt.Errorf("push dial %s: hello: %w", addr, err)
	}
	dctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("push dial %s: %w: %w", addr, ErrUnavailable, err)
	}
	if dl, ok := dctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	nc, err := clientTLS(dctx, raw, addr, d.Auth, d.Logger)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("push dial %s: %w", addr, err)
	}
	peer, err := clientHandshake(dctx, nc, hello)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("push dial %s: %w", addr, explainRefused(err, d.Auth))
	}
	c := newClient(addr, peer, nc, raw, d)
	go c.run(c.ctx)
	return c, nil
}

// newClient returns a client on a connection whose handshake is done; run
// starts its loops.
func newClient(addr string, peer Hello, nc, raw net.Conn, d DialConfig) *Client {
	cctx, ccancel := context.WithCancel(context.Background())
	w := newWire(nc, d.KeepAlive, d.IdleTimeout)
	w.raw = raw
	return &Client{
		addr: addr, peer: peer, w: w,
		log: d.Logger.With("push_peer", addr), sem: make(chan struct{}, d.MaxInFlight),
		pending: map[uint64]chan Msg{}, kick: make(chan struct{}, 1),
		cancel: ccancel, ctx: cctx, done: make(chan struct{}),
	}
}

// explainRefused names the fix when the server refused this node during
// the TLS handshake: in TLS 1.3 the client finishes its side first and
// learns of the refusal (a "bad certificate" alert) on its first read.
func explainRefused(err error, a Auth) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Errorf("the server refused this node's certificate (pin this node's fingerprint %s there with --peer-fp): %w",
			a.Identity.Fingerprint, err)
	}
	return err
}

// clientHandshake sends HELLO and reads HELLO_OK (or a NACK naming why the
// server refused).
func clientHandshake(ctx context.Context, nc net.Conn, hello Hello) (Hello, error) {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if _, err := nc.Write(AppendMsg(nil, Msg{Type: TypeHello, Version: Version, Hello: hello})); err != nil {
		return Hello{}, fmt.Errorf("%w: send HELLO: %w", ErrUnavailable, err)
	}
	var buf []byte
	m, err := ReadMsg(nc, &buf)
	switch {
	case errors.Is(err, ErrProtocol):
		return Hello{}, fmt.Errorf("handshake: %w", err)
	case err != nil:
		return Hello{}, fmt.Errorf("%w: handshake: %w", ErrUnavailable, err)
	case m.Type == TypeNack:
		return Hello{}, fmt.Errorf("refused: %w", ErrorOf(m.Code, m.Text))
	case m.Type != TypeHelloOK:
		return Hello{}, fmt.Errorf("%w: handshake answered with %s", ErrProtocol, m.Type)
	case m.Version != Version:
		return Hello{}, fmt.Errorf("%w: server answered version %d, want %d", ErrVersion, m.Version, Version)
	}
	if err := validateHello(m.Hello); err != nil {
		return Hello{}, fmt.Errorf("%w: server hello: %w", ErrProtocol, err)
	}
	return m.Hello, nil
}

// Peer returns the server's hello.
func (c *Client) Peer() Hello { return c.peer }

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while it is up). It always
// satisfies errors.Is(err, ErrUnavailable), and never errors.As with
// *RemoteError (that is reserved for per-file NACKs).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection; pushes in flight fail with ErrUnavailable.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// run owns the connection's goroutines until it ends.
func (c *Client) run(ctx context.Context) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.w.closeOnDone(gctx) })
	g.Go(func() error { return c.w.writeLoop(gctx) })
	g.Go(func() error { return c.readLoop(gctx) })
	g.Go(func() error { return c.cancelLoop(gctx) })
	err := g.Wait()
	if err == nil || ctx.Err() != nil {
		err = net.ErrClosed
	}
	// A final NACK (id 0) is a reason for losing the connection, not a
	// refusal of a file: it is kept as text so that errors.As(err,
	// *RemoteError) only ever matches per-file NACKs, and connection loss is
	// always ErrUnavailable.
	var re *RemoteError
	if errors.As(err, &re) {
		err = fmt.Errorf("peer ended the connection: %s", re.Error())
	}
	c.err = fmt.Errorf("%w: connection to %s: %w", ErrUnavailable, c.addr, err)
	c.cancel()
	close(c.done)
}

// readLoop routes replies to the pushes waiting for them.
func (c *Client) readLoop(ctx context.Context) error {
	var buf []byte
	for {
		m, err := c.w.next(ctx, &buf)
		if err != nil {
			return err
		}
		switch m.Type {
		case TypeAccept, TypeAck, TypeNack:
			if m.Type == TypeNack && m.ID == 0 {
				return fmt.Errorf("server closes the connection: %w", ErrorOf(m.Code, m.Text))
			}
			if err := c.route(m); err != nil {
				return c.w.closeWith(ctx, err)
			}
		case TypePing:
			if err := c.w.send(ctx, nil, outFrame{m: Msg{Type: TypePong, ID: m.ID}}); err != nil {
				return err
			}
		case TypePong:
		default:
			return c.w.closeWith(ctx, fmt.Errorf("%w: unexpected %s frame from server", ErrProtocol, m.Type))
		}
	}
}

// giveUp has a CANCEL sent for file id. The push has queued all its frames
// already, so the CANCEL follows them; it is queued by cancelLoop, so that a
// canceled caller never waits for a busy writer queue, and never dropped: a
// file left half-received on a live connection would hold back any resend
// of it on that connection.
func (c *Client) giveUp(id uint64) {
	c.mu.Lock()
	c.cancels = append(c.cancels, id)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// cancelLoop queues the CANCEL frames of given-up pushes, in order.
func (c *Client) cancelLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		}
		c.mu.Lock()
		ids := c.cancels
		c.cancels = nil
		c.mu.Unlock()
		for _, id := range ids {
			if err := c.w.send(ctx, nil, outFrame{m: Msg{Type: TypeCancel, ID: id}}); err != nil {
				return nil // the connection ends; the server aborts every file
			}
		}
	}
}

// route hands a reply to the push of its file id; replies for files no
// longer waiting (canceled pushes) are dropped.
func (c *Client) route(m Msg) error {
	c.mu.Lock()
	ch := c.pending[m.ID]
	c.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case ch <- m:
		return nil
	default:
		return fmt.Errorf("%w: too many replies for file id %d", ErrProtocol, m.ID)
	}
}

// register allocates a file id and its reply channel.
func (c *Client) register() (uint64, chan Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	ch := make(chan Msg, 4)
	c.pending[c.nextID] = ch
	return c.nextID, ch
}

func (c *Client) unregister(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}
