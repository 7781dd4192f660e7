package link

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// PacketLink is the simulated line between two in-process packet endpoints,
// without sockets: what A writes to B's address crosses the up pipe, what
// B writes to A's crosses the down pipe. Both endpoints are net.PacketConn,
// so a UDP protocol (QUIC) runs over it unchanged; the pipes use only the
// time package, so a test under testing/synctest runs minutes of a slow
// line in an instant of real time.
type PacketLink struct {
	up, down *Pipe
	a, b     *packetEnd
}

// inboxDatagrams is how many datagrams an endpoint holds unread, like a
// socket's receive buffer; more are dropped.
const inboxDatagrams = 4096

// NewPacketLink returns a line of cfg (each direction) between endpoints
// at addresses a and b. Run Serve to carry packets.
func NewPacketLink(cfg PipeConfig, a, b net.Addr) (*PacketLink, error) {
	m := newMetrics()
	up, err := NewPipe(cfg, "up", m)
	if err != nil {
		return nil, err
	}
	downCfg := cfg
	downCfg.Seed = cfg.Seed ^ 0x646f776e
	down, err := NewPipe(downCfg, "down", m)
	if err != nil {
		return nil, err
	}
	l := &PacketLink{up: up, down: down}
	l.a = newPacketEnd(a, l)
	l.b = newPacketEnd(b, l)
	return l, nil
}

// A is the endpoint whose writes cross the up pipe.
func (l *PacketLink) A() net.PacketConn { return l.a }

// B is the endpoint whose writes cross the down pipe.
func (l *PacketLink) B() net.PacketConn { return l.b }

// Up and Down are the two directions (queue depth, for tests).
func (l *PacketLink) Up() *Pipe   { return l.up }
func (l *PacketLink) Down() *Pipe { return l.down }

// Serve carries packets until ctx ends.
func (l *PacketLink) Serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.up.Serve(ctx) })
	g.Go(func() error { return l.down.Serve(ctx) })
	return g.Wait()
}

// datagram is one packet waiting in an endpoint's inbox.
type datagram struct {
	b    []byte
	from net.Addr
}

// packetEnd is one endpoint of a PacketLink.
type packetEnd struct {
	addr  net.Addr
	l     *PacketLink
	inbox chan datagram

	mu       sync.Mutex
	closed   chan struct{}
	deadline time.Time
	changed  chan struct{} // closed and replaced when the deadline changes
}

var _ net.PacketConn = (*packetEnd)(nil)

func newPacketEnd(addr net.Addr, l *PacketLink) *packetEnd {
	return &packetEnd{addr: addr, l: l, inbox: make(chan datagram, inboxDatagrams),
		closed: make(chan struct{}), changed: make(chan struct{})}
}

// ReadFrom implements net.PacketConn.
func (e *packetEnd) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		e.mu.Lock()
		deadline, changed := e.deadline, e.changed
		e.mu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		var dg datagram
		var err error
		select {
		case dg = <-e.inbox:
		case <-e.closed:
			err = net.ErrClosed
		case <-timeout:
			err = os.ErrDeadlineExceeded
		case <-changed:
		}
		if timer != nil {
			timer.Stop()
		}
		switch {
		case err != nil:
			return 0, nil, err
		case dg.b != nil:
			return copy(p, dg.b), dg.from, nil
		}
	}
}

// WriteTo implements net.PacketConn: the datagram enters this endpoint's
// pipe; one for an address that is not the other endpoint's is dropped.
func (e *packetEnd) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-e.closed:
		return 0, net.ErrClosed
	default:
	}
	pipe, to := e.l.up, e.l.b
	if e == e.l.b {
		pipe, to = e.l.down, e.l.a
	}
	if addr.String() != to.addr.String() {
		return len(p), nil
	}
	b := append([]byte(nil), p...)
	pipe.Send(b, OverheadUDP, func(b []byte) {
		select {
		case to.inbox <- datagram{b: b, from: e.addr}:
		default: // the receiver's buffer is full
		}
	})
	return len(p), nil
}

// Close implements net.PacketConn.
func (e *packetEnd) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.closed:
		return net.ErrClosed
	default:
		close(e.closed)
		return nil
	}
}

// LocalAddr implements net.PacketConn.
func (e *packetEnd) LocalAddr() net.Addr { return e.addr }

// SetDeadline implements net.PacketConn (the read deadline; writes never
// block).
func (e *packetEnd) SetDeadline(t time.Time) error { return e.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (e *packetEnd) SetReadDeadline(t time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deadline = t
	close(e.changed)
	e.changed = make(chan struct{})
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes never block.
func (e *packetEnd) SetWriteDeadline(time.Time) error { return nil }
