package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Relay carries UDP and TCP between clients of Listen and the To address
// through a simulated line: one Pipe per direction, shared by every flow.
type Relay struct {
	cfg      Config
	up, down *Pipe
	log      *slog.Logger

	mu    sync.Mutex
	ready chan struct{} // closed once listening
	addr  net.Addr      // the bound address (UDP and TCP share the port)
}

// New checks cfg and builds the relay; Serve starts it.
func New(cfg Config) (*Relay, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := newMetrics()
	up, err := NewPipe(cfg.Line, "up", m)
	if err != nil {
		return nil, err
	}
	downCfg := cfg.Line
	downCfg.Seed = cfg.Line.Seed ^ 0x646f776e
	down, err := NewPipe(downCfg, "down", m)
	if err != nil {
		return nil, err
	}
	if err := m.register(cfg.Metrics, up, down); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg, up: up, down: down, log: cfg.Logger, ready: make(chan struct{})}, nil
}

// Addr waits until the relay listens and returns its address (useful with
// port 0), or nil if ctx ends first.
func (r *Relay) Addr(ctx context.Context) net.Addr {
	select {
	case <-r.ready:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.addr
	case <-ctx.Done():
		return nil
	}
}

// Serve listens on UDP and TCP and relays until ctx ends.
func (r *Relay) Serve(ctx context.Context) error {
	pc, ln, err := listenBoth(r.cfg.Listen)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.addr = pc.LocalAddr()
	r.mu.Unlock()
	close(r.ready)
	r.log.Info("link relay listening", "addr", pc.LocalAddr(), "to", r.cfg.To,
		"rate_Bps", r.cfg.Line.Rate, "delay", r.cfg.Line.Delay, "queue", r.cfg.Line.Queue)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.up.Serve(ctx) })
	g.Go(func() error { return r.down.Serve(ctx) })
	g.Go(func() error {
		<-ctx.Done()
		pc.Close()
		ln.Close()
		return nil
	})
	u := &udpRelay{r: r, pc: pc, flows: map[string]*udpFlow{}}
	g.Go(func() error { return u.serve(ctx, g) })
	g.Go(func() error { return r.acceptTCP(ctx, g, ln) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// listenBoth listens on UDP and TCP on the same port. With port 0 the kernel
// picks a free UDP port, which TCP may hold already: that case is retried on
// a new port a few times instead of failing.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("link: listen udp %s: %w", addr, err)
		}
		bigBuffers(pc)
		ln, err := net.Listen("tcp", pc.LocalAddr().String()) // same port as UDP
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || attempt == 9 {
			return nil, nil, fmt.Errorf("link: listen tcp %s: %w", pc.LocalAddr(), err)
		}
	}
}

// udpRelay maps each client address to its own socket toward To.
type udpRelay struct {
	r     *Relay
	pc    net.PacketConn
	mu    sync.Mutex
	flows map[string]*udpFlow
}

type udpFlow struct {
	conn   *net.UDPConn
	client net.Addr
}

func (u *udpRelay) serve(ctx context.Context, g *errgroup.Group) error {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := u.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("link: read udp: %w", err)
		}
		f, err := u.flow(ctx, g, addr)
		if err != nil {
			u.r.log.Warn("link: udp flow", "client", addr, "err", err)
			continue
		}
		b := append([]byte(nil), buf[:n]...)
		u.r.up.Send(b, OverheadUDP, func(b []byte) { f.conn.Write(b) }) //nolint:errcheck // a lost datagram is a lost datagram
	}
}

// flow returns the client's flow, opening it (and its reader) on first use.
func (u *udpRelay) flow(ctx context.Context, g *errgroup.Group, addr net.Addr) (*udpFlow, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f, ok := u.flows[addr.String()]; ok {
		return f, nil
	}
	to, err := net.ResolveUDPAddr("udp", u.r.cfg.To)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", u.r.cfg.To, err)
	}
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		return nil, fmt.Errorf("dial udp %s: %w", u.r.cfg.To, err)
	}
	bigBuffers(c)
	f := &udpFlow{conn: c, client: addr}
	u.flows[addr.String()] = f
	g.Go(func() error { return u.readFlow(ctx, f) })
	return f, nil
}

// readFlow carries the server's answers back to the client until the flow
// has been idle for UDPIdle or ctx ends.
func (u *udpRelay) readFlow(ctx context.Context, f *udpFlow) error {
	defer func() {
		u.mu.Lock()
		delete(u.flows, f.client.String())
		u.mu.Unlock()
		f.conn.Close()
	}()
	stop := context.AfterFunc(ctx, func() { f.conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		f.conn.SetReadDeadline(time.Now().Add(u.r.cfg.UDPIdle))
		n, err := f.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || ctx.Err() != nil {
				return nil
			}
			u.r.log.Debug("link: udp flow ends", "client", f.client, "err", err)
			return nil
		}
		b := append([]byte(nil), buf[:n]...)
		u.r.down.Send(b, OverheadUDP, func(b []byte) { u.pc.WriteTo(b, f.client) }) //nolint:errcheck
	}
}

// socketBuffer is the socket buffer the relay asks for (the kernel caps it
// at net.core.rmem_max / wmem_max). The default, about 200 KB, is 16 ms of
// a 100 Mbit/s line: a relay the host runs late for longer would drop
// datagrams in the kernel, a loss the simulated line did not decide.
const socketBuffer = 8 << 20

// bigBuffers enlarges a UDP socket's buffers, best effort.
func bigBuffers(pc net.PacketConn) {
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(socketBuffer)
		_ = u.SetWriteBuffer(socketBuffer)
	}
}
