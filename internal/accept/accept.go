// Package accept is the accept loop every aimwan listener shares (the push
// servers of dst and the source-edge proxy, the NBD servers, the control
// and metrics endpoints), so that a listener holds under load and attack:
//
//   - cap: at most MaxConns connections are open at once, and at most
//     MaxPerHost from one remote IP. A connection over a cap is accepted and
//     closed at once (it does not wait in the kernel's backlog), counted and
//     logged, paced.
//   - temporary error: an accept that fails with EMFILE, ENFILE,
//     ECONNABORTED, ENOBUFS, ENOMEM, EINTR or a timeout is retried after a
//     backoff (5 ms doubling to 1 s, as net/http does) instead of ending the
//     server; the first failure of a streak and the recovery are logged.
package accept

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults.
const (
	DefaultMaxConns = 256
	minBackoff      = 5 * time.Millisecond
	maxBackoff      = time.Second
	logEvery        = 10 * time.Second // at most one "refusing connections" line per this
)

// Config tunes a Listener. The zero value means the defaults.
type Config struct {
	// Name names the listener in logs ("push", "nbd", "control").
	Name string
	// MaxConns caps the connections open at once (0: DefaultMaxConns).
	MaxConns int
	// MaxPerHost caps the connections from one remote IP (0: MaxConns, i.e.
	// no cap of its own).
	MaxPerHost int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxPerHost <= 0 || c.MaxPerHost > c.MaxConns {
		c.MaxPerHost = c.MaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Name == "" {
		c.Name = "listener"
	}
	return c
}

// Listener wraps a net.Listener with the caps and the retry of temporary
// errors. Its Accept returns connections whose Close frees their slot.
type Listener struct {
	net.Listener
	cfg     Config
	closed  chan struct{}
	closing sync.Once

	mu      sync.Mutex
	open    int
	perHost map[string]int
	lastLog time.Time
	unseen  int // refusals not logged yet

	refused atomic.Uint64
	retries atomic.Uint64
}

// Limit wraps ln.
func Limit(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg.withDefaults(), closed: make(chan struct{}), perHost: map[string]int{}}
}

// Refused counts connections closed at once for being over a cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Retries counts accepts retried after a temporary error.
func (l *Listener) Retries() uint64 { return l.retries.Load() }

// Open returns the connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Close closes the listener and ends a backoff in progress.
func (l *Listener) Close() error {
	l.closing.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Accept waits for the next connection within the caps. Temporary errors are
// retried after a backoff; any other error (the listener was closed) is
// returned.
func (l *Listener) Accept() (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if !Temporary(err) {
				return nil, err
			}
			backoff = l.backoff(backoff, err)
			select {
			case <-l.closed:
				return nil, fmt.Errorf("%s: accept: %w", l.cfg.Name, net.ErrClosed)
			case <-time.After(backoff):
			}
			continue
		}
		if backoff > 0 {
			l.cfg.Logger.Info("accepting connections again", "listener", l.cfg.Name, "addr", l.Addr().String())
			backoff = 0
		}
		if c := l.admit(nc); c != nil {
			return c, nil
		}
	}
}

// backoff returns the next wait after a temporary accept error, logging the
// first of a streak.
func (l *Listener) backoff(last time.Duration, err error) time.Duration {
	l.retries.Add(1)
	if last == 0 {
		l.cfg.Logger.Warn("accept failed; retrying with backoff (raise the open-file limit if this is EMFILE/ENFILE)",
			"listener", l.cfg.Name, "addr", l.Addr().String(), "err", err)
		return minBackoff
	}
	return min(2*last, maxBackoff)
}

// admit takes a slot for nc, or closes it when a cap is reached.
func (l *Listener) admit(nc net.Conn) net.Conn {
	host := remoteHost(nc)
	l.mu.Lock()
	over := ""
	switch {
	case l.open >= l.cfg.MaxConns:
		over = fmt.Sprintf("%d connections open (limit %d)", l.open, l.cfg.MaxConns)
	case l.perHost[host] >= l.cfg.MaxPerHost:
		over = fmt.Sprintf("%d connections open from %s (limit %d per host)", l.perHost[host], host, l.cfg.MaxPerHost)
	}
	if over == "" {
		l.open++
		l.perHost[host]++
		l.mu.Unlock()
		return &conn{Conn: nc, l: l, host: host}
	}
	l.unseen++
	logNow := time.Since(l.lastLog) >= logEvery
	var n int
	if logNow {
		l.lastLog, n, l.unseen = time.Now(), l.unseen, 0
	}
	l.mu.Unlock()
	l.refused.Add(1)
	nc.Close()
	if logNow {
		l.cfg.Logger.Warn("refusing connections: listener at its cap", "listener", l.cfg.Name,
			"addr", l.Addr().String(), "why", over, "refused", n, "remote", nc.RemoteAddr().String())
	}
	return nil
}

func (l *Listener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perHost[host]--; l.perHost[host] <= 0 {
		delete(l.perHost, host)
	}
}

// conn is an admitted connection; Close frees its slot once.
type conn struct {
	net.Conn
	l    *Listener
	host string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}

// remoteHost is the IP a connection comes from ("" when unknown).
func remoteHost(nc net.Conn) string {
	a := nc.RemoteAddr()
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// temporaryErrnos are the accept errors that say nothing about the
// listener itself: out of file descriptors or memory, a connection that
// went away while queued, a signal.
var temporaryErrnos = []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED,
	syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR, syscall.EAGAIN, syscall.ECONNRESET, syscall.EPROTO}

// Temporary reports whether an accept error is worth a retry.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range temporaryErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Serve accepts connections on ln within cfg's caps until ctx ends, running
// handle for each in a goroutine of its own and closing the connection when
// handle returns. When ctx ends it closes the listener, waits for every
// handle (which must honour ctx) and returns nil; a listener that fails for
// good is returned as an error.
func Serve(ctx context.Context, ln net.Listener, cfg Config, handle func(context.Context, net.Conn)) error {
	l, ok := ln.(*Listener)
	if !ok {
		l = Limit(ln, cfg)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-ctx.Done()
		l.Close()
		return nil
	})
	g.Go(func() error {
		for {
			nc, err := l.Accept()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("%s: accept: %w", l.cfg.Name, err)
			}
			g.Go(func() error {
				defer nc.Close()
				handle(ctx, nc)
				return nil
			})
		}
	})
	return g.Wait()
}
