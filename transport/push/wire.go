package push

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// Defaults shared by client and server.
const (
	DefaultKeepAlive   = 15 * time.Second // PING when nothing was written for this long
	DefaultIdleTimeout = 60 * time.Second // close when nothing arrived for this long
	DefaultHandshake   = 10 * time.Second // HELLO / HELLO_OK must complete within this
	DefaultMaxFileSize = 256 << 20        // largest file a server accepts
	// DefaultProgressTimeout is how long a file being received may go
	// without DATA before it is aborted (Server.ProgressTimeout).
	DefaultProgressTimeout = 2 * time.Minute
	writeBatch             = 256 << 10       // writer coalesces queued frames up to this
	finalGrace             = 2 * time.Second // how long a final NACK may take to leave
)

// errPeerClosed is the reader's result when the peer closed the connection
// between frames.
var errPeerClosed = errors.New("peer closed the connection")

// outFrame is one message queued for the writer loop.
type outFrame struct {
	m        Msg
	release  func() // called once m.Data has been copied (may be nil)
	closeErr error  // non-nil: the last frame; the writer returns this after writing it
}

// wire is the framing half of a connection shared by client and server: a
// writer loop fed by a channel, keepalive, and deadlines.
type wire struct {
	nc        net.Conn // the TLS connection frames go over
	raw       net.Conn // the TCP connection under it: closed to end the connection at once
	out       chan outFrame
	keepAlive time.Duration
	idle      time.Duration
}

func newWire(nc net.Conn, keepAlive, idle time.Duration) *wire {
	return &wire{nc: nc, raw: nc, out: make(chan outFrame, 16), keepAlive: keepAlive, idle: idle}
}

// send queues f for the writer loop; it fails when ctx or stop end first,
// releasing f's buffer.
func (w *wire) send(ctx context.Context, stop <-chan struct{}, f outFrame) error {
	select {
	case w.out <- f:
		return nil
	case <-ctx.Done():
		err := ctx.Err()
		f.done()
		return err
	case <-stop:
		f.done()
		return net.ErrClosed
	}
}

func (f outFrame) done() {
	if f.release != nil {
		f.release()
	}
}

// writeLoop writes queued frames, coalescing small ones, and sends a PING
// when nothing was written for a keepalive interval. It returns nil when ctx
// ends, or the write error, or the closeErr of a final frame.
func (w *wire) writeLoop(ctx context.Context) error {
	buf := make([]byte, 0, writeBatch+MaxFrameBody)
	tick := time.NewTicker(w.keepAlive)
	defer tick.Stop()
	wrote := false
	var ping uint64
	for {
		var f outFrame
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if wrote {
				wrote = false
				continue
			}
			ping++
			f = outFrame{m: Msg{Type: TypePing, ID: ping}}
		case f = <-w.out:
		}
		buf = AppendMsg(buf[:0], f.m)
		f.done()
		closeErr := f.closeErr
	batch:
		for len(buf) < writeBatch && closeErr == nil {
			select {
			case f = <-w.out:
				buf = AppendMsg(buf, f.m)
				f.done()
				closeErr = f.closeErr
			default:
				break batch
			}
		}
		if err := w.nc.SetWriteDeadline(time.Now().Add(w.idle)); err != nil {
			return err
		}
		if _, err := w.nc.Write(buf); err != nil {
			return err
		}
		wrote = true
		if closeErr != nil {
			return closeErr
		}
	}
}

// read reads the next message with the idle deadline. A clean EOF between
// frames becomes errPeerClosed.
func (w *wire) read(buf *[]byte) (Msg, error) {
	if err := w.nc.SetReadDeadline(time.Now().Add(w.idle)); err != nil {
		return Msg{}, err
	}
	m, err := ReadMsg(w.nc, buf)
	if errors.Is(err, io.EOF) {
		return m, errPeerClosed
	}
	return m, err
}

// next reads the next message like read; a frame that breaks the protocol
// ends the connection with a final NACK naming why (see closeWith).
func (w *wire) next(ctx context.Context, buf *[]byte) (Msg, error) {
	m, err := w.read(buf)
	if errors.Is(err, ErrProtocol) {
		return m, w.closeWith(ctx, err)
	}
	return m, err
}

// closeWith sends a final NACK (id 0) naming why the connection ends, then
// waits for the writer to end the connection (bounded by finalGrace), and
// returns cause for the reader loop to return.
func (w *wire) closeWith(ctx context.Context, cause error) error {
	f := outFrame{m: Msg{Type: TypeNack, Code: CodeOf(cause), Text: cause.Error()}, closeErr: cause}
	t := time.NewTimer(finalGrace)
	defer t.Stop()
	select {
	case w.out <- f:
	case <-ctx.Done():
		return cause
	case <-t.C:
		return cause
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return cause
}

// closeOnDone closes the connection when ctx ends, unblocking the loops. It
// closes the TCP connection, not the TLS one: a TLS close first writes a
// close_notify, which could wait on a peer that reads nothing.
func (w *wire) closeOnDone(ctx context.Context) error {
	<-ctx.Done()
	w.raw.Close()
	return nil
}
