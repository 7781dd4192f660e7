package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/sim/link"
	"github.com/quic-go/quic-go"
)

// simLine is a Pool and an Assembler joined by the link simulator's line,
// in process (link.PacketLink): run it inside synctest.Test, where minutes
// of a slow line take an instant.
type simLine struct {
	link *link.PacketLink
	pool *Pool
	asm  *Assembler
	ln   *Listener
	stop func()

	mu    sync.Mutex
	conns []*quic.Conn // accepted
}

// received sums the bytes the accepted connections received.
func (s *simLine) received() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, c := range s.conns {
		n += c.ConnectionStats().BytesReceived
	}
	return n
}

var (
	simClientAddr = &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4001}
	simServerAddr = &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 4433}
)

// quietLog discards log lines.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newSimLine starts the line, the listener (serving part streams into the
// assembler) and the pool. cfg tunes the pool (its LinkRate and RTT are
// the hints).
func newSimLine(t *testing.T, line link.PipeConfig, cfg Config) *simLine {
	t.Helper()
	srvID, cliID := mustIdentity(t), mustIdentity(t)
	l, err := link.NewPacketLink(line, simClientAddr, simServerAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Serve(ctx) })
	ln, err := ListenPacket(l.B(), srvID, Pins{cliID.Fingerprint}, cfg, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	s := &simLine{link: l, asm: NewAssembler(AssemblerConfig{Logger: quietLog}), ln: ln}
	wg.Go(func() { s.serve(ctx) })
	ep, err := NewEndpoint(l.A(), cliID, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	s.pool = &Pool{Addr: simServerAddr.String(), Identity: cliID, Pins: Pins{srvID.Fingerprint}, Config: cfg,
		Endpoint: ep, Logger: quietLog}
	wg.Go(func() { _ = s.pool.Serve(ctx) })
	s.stop = func() {
		cancel()
		ln.Close()
		ep.Close()
		wg.Wait()
	}
	t.Cleanup(s.stop)
	return s
}

// serve accepts connections and serves their part streams.
func (s *simLine) serve(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.ln.Accept(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		wg.Go(func() {
			var streams sync.WaitGroup
			defer streams.Wait()
			for {
				st, err := c.AcceptStream(ctx)
				if err != nil {
					return
				}
				streams.Go(func() {
					var tag [1]byte
					if _, err := io.ReadFull(st, tag[:]); err != nil || tag[0] != PartTag {
						st.CancelRead(partStreamError)
						return
					}
					_ = s.asm.ServeLane(ctx, st, s.received)
				})
			}
		})
	}
}

// send moves data as one transfer and checks what arrived.
func (s *simLine) send(ctx context.Context, t *testing.T, data []byte) {
	t.Helper()
	tr := s.pool.NewTransfer(data)
	got := make(chan []byte, 1)
	go func() {
		b, err := s.asm.Receive(ctx, tr.ID, int64(len(data)), tr.PartSize)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	if err := tr.Send(ctx); err != nil {
		t.Fatalf("transfer of %d bytes: %v", len(data), err)
	}
	if b := <-got; string(b) != string(data) {
		t.Fatalf("transfer of %d bytes arrived changed", len(data))
	}
}

// queueSampler records the up pipe's queue every 10 ms until stopped.
type queueSampler struct {
	mu      sync.Mutex
	samples []float64
	stop    chan struct{}
	done    chan struct{}
}

func sampleQueue(p *link.Pipe) *queueSampler {
	q := &queueSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-q.stop:
				return
			case <-t.C:
				q.mu.Lock()
				q.samples = append(q.samples, p.QueueBytes())
				q.mu.Unlock()
			}
		}
	}()
	return q
}

// end stops sampling and returns the samples.
func (q *queueSampler) end() []float64 {
	close(q.stop)
	<-q.done
	return q.samples
}
