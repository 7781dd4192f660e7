package link

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sync/errgroup"
)

// segment is the most payload a relayed TCP segment carries (an Ethernet
// MSS with timestamps).
const segment = 1448

// streamWindow bounds the bytes of one stream direction read from the
// sender but not yet written to the receiver.
const streamWindow = 4 << 20

func (r *Relay) acceptTCP(ctx context.Context, g *errgroup.Group, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("link: accept tcp: %w", err)
		}
		g.Go(func() error {
			r.relayTCP(ctx, c)
			return nil
		})
	}
}

// relayTCP terminates the client's connection, opens one to To, and copies
// each direction through its pipe. It returns when both directions ended.
func (r *Relay) relayTCP(ctx context.Context, c net.Conn) {
	defer c.Close()
	var d net.Dialer
	u, err := d.DialContext(ctx, "tcp", r.cfg.To)
	if err != nil {
		r.log.Warn("link: dial tcp", "to", r.cfg.To, "err", err)
		return
	}
	defer u.Close()
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, func() { c.Close(); u.Close() })
	defer stop()
	pump(g, gctx, c, u, r.up)
	pump(g, gctx, u, c, r.down)
	if err := g.Wait(); err != nil {
		r.log.Debug("link: tcp relay ends", "client", c.RemoteAddr(), "err", err)
	}
}

// pump copies src to dst through p in segments: a reader that waits for
// line room (never drops) and a writer fed by the pipe's deliveries.
func pump(g *errgroup.Group, ctx context.Context, src, dst net.Conn, p *Pipe) {
	const slots = streamWindow / segment
	credits := make(chan struct{}, slots) // segments read but not yet written
	arrived := make(chan []byte, slots+1) // never blocks: bounded by credits
	deliver := func(b []byte) { arrived <- b }
	g.Go(func() error {
		buf := make([]byte, segment)
		for {
			select {
			case credits <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			n, err := src.Read(buf)
			if n > 0 {
				if werr := p.SendWait(ctx, append([]byte(nil), buf[:n]...), OverheadTCP, deliver); werr != nil {
					return nil
				}
			}
			if err != nil { // EOF or reset: end of this direction
				return p.SendWait(ctx, nil, 0, deliver)
			}
		}
	})
	g.Go(func() error {
		for {
			select {
			case b := <-arrived:
				if len(b) == 0 {
					if cw, ok := dst.(interface{ CloseWrite() error }); ok {
						cw.CloseWrite()
					}
					return nil
				}
				if _, err := dst.Write(b); err != nil {
					return fmt.Errorf("relay write: %w", err)
				}
				<-credits
			case <-ctx.Done():
				return nil
			}
		}
	})
}
