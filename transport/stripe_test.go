package transport

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aimwan/aimwan/sim/link"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Transfers fill a long, lossy line: the goodput (transfer bytes per
// second of the line's rate, in the simulator's virtual time) is what the
// line carries after QUIC's and IP's headers, not what one loss-halved
// congestion window would allow. (One NewReno connection gets about 0.5%
// of the 20 Mbit/s line at 200 ms and 1% loss.)
func TestTransfersFillLossyLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		line  link.PipeConfig
		bytes int
		want  float64 // goodput, fraction of the line rate
	}{
		{"2mbit 40ms 0.1% loss", link.PipeConfig{Rate: 250e3, Delay: 20 * time.Millisecond, Loss: 0.001, Seed: 1}, 6 << 20, 0.85},
		{"20mbit 200ms 1% loss", link.PipeConfig{Rate: 2.5e6, Delay: 100 * time.Millisecond, Loss: 0.01, Seed: 2}, 24 << 20, 0.60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSimLine(t, tc.line, Config{LinkRate: tc.line.Rate, RTT: 2 * tc.line.Delay})
				data := randomBytes(7, tc.bytes/3)
				start := time.Now()
				for range 3 {
					s.send(t.Context(), t, data)
				}
				goodput := float64(3*len(data)) / time.Since(start).Seconds() / tc.line.Rate
				e := s.pool.Estimates()
				t.Logf("goodput %.1f%% of the line in %v; estimates: bottleneck %.0f B/s, base RTT %v, %d connections, %d backoffs",
					100*goodput, time.Since(start).Round(time.Millisecond), e.Bottleneck, e.BaseRTT, e.Conns, e.Backoffs)
				if goodput < tc.want {
					t.Errorf("goodput %.1f%% of the line, want at least %.0f%%", 100*goodput, 100*tc.want)
				}
				if e.Bottleneck < 0.8*tc.line.Rate || e.Bottleneck > 1.1*tc.line.Rate {
					t.Errorf("bottleneck estimate %.0f B/s for a %.0f B/s line", e.Bottleneck, tc.line.Rate)
				}
				if d := e.BaseRTT - 2*tc.line.Delay; d < 0 || d > 20*time.Millisecond {
					t.Errorf("base RTT estimate %v for a %v line", e.BaseRTT, 2*tc.line.Delay)
				}
			})
		})
	}
}

// The sender backs off when the queue grows: halfway through, the line
// falls to half its rate (its backup line takes over, as in an outage);
// the pace follows, the bottleneck's queue stays short of overflowing,
// and the pace climbs back when the line returns.
func TestSenderBacksOffWhenTheQueueGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := link.PipeConfig{Rate: 250e3, Delay: 20 * time.Millisecond, Seed: 3,
			Outages: []link.Outage{{Start: 20 * time.Second, Duration: 40 * time.Second}}, BackupRate: 125e3}
		s := newSimLine(t, line, Config{LinkRate: line.Rate, RTT: 2 * line.Delay})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			data := randomBytes(9, 1<<20)
			for ctx.Err() == nil {
				tr := s.pool.NewTransfer(data)
				go func() { _, _ = s.asm.Receive(ctx, tr.ID, int64(len(data)), tr.PartSize) }()
				_ = tr.Send(ctx)
			}
		}()
		up := s.link.Up()
		time.Sleep(18 * time.Second)
		before := s.pool.Estimates()
		time.Sleep(10 * time.Second) // the line has been at half rate for 8 s
		after := s.pool.Estimates()
		drops0 := up.Stats().QueueDrops.Load() // the fall itself costs a few: nobody could know
		var worst float64
		for range 300 { // 30 s at half rate: the queue must not stand full
			time.Sleep(100 * time.Millisecond)
			worst = max(worst, up.QueueBytes())
		}
		drops := up.Stats().QueueDrops.Load() - drops0
		time.Sleep(20 * time.Second) // the line is back at full rate for 18 s
		back := s.pool.Estimates()
		t.Logf("pace %.0f → %.0f (half rate) → %.0f (full rate); backoffs %d → %d; worst queue at half rate %.0f of 32768 bytes; %d queue drops once settled",
			before.Pacing, after.Pacing, back.Pacing, before.Backoffs, after.Backoffs, worst, drops)
		if after.Backoffs <= before.Backoffs {
			t.Errorf("no backoff when the line fell to half its rate")
		}
		if after.Pacing > 1.15*125e3 {
			t.Errorf("pace %.0f B/s eight seconds after the line fell to 125000", after.Pacing)
		}
		if worst > 30000 {
			t.Errorf("the queue reached %.0f bytes at half rate (32768 hold)", worst)
		}
		if drops > 5 {
			t.Errorf("%d datagrams dropped by a full queue at half rate", drops)
		}
		if back.Pacing < 0.8*line.Rate {
			t.Errorf("pace %.0f B/s 18 s after the line came back to %.0f", back.Pacing, line.Rate)
		}
	})
}

// Other users of the line keep their rate: 70 KB/s of VoIP beside a
// transfer on a 2 Mbit/s line loses no more than a few percent of its
// packets, and the transfer gets the rest of the line.
func TestCrossTrafficKeepsItsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := link.PipeConfig{Rate: 250e3, Delay: 20 * time.Millisecond, Loss: 0.001, Cross: 70e3, Seed: 4}
		s := newSimLine(t, line, Config{LinkRate: line.Rate, RTT: 2 * line.Delay})
		data := randomBytes(11, 2<<20)
		start := time.Now()
		for range 3 {
			s.send(t.Context(), t, data)
		}
		goodput := float64(3*len(data)) / time.Since(start).Seconds()
		st := s.link.Up().Stats()
		carried, dropped := float64(st.CrossCarried.Load()), float64(st.CrossDropped.Load())
		kept := carried / (carried + dropped)
		t.Logf("cross traffic kept %.1f%% of its rate; transfer %.0f B/s of the %.0f left", 100*kept, goodput, line.Rate-line.Cross)
		if kept < 0.98 {
			t.Errorf("cross traffic kept %.1f%% of its rate, want at least 98%%", 100*kept)
		}
		if goodput < 0.8*(line.Rate-line.Cross) {
			t.Errorf("transfer got %.0f B/s of the %.0f the cross traffic leaves", goodput, line.Rate-line.Cross)
		}
	})
}

// A connection that dies mid-transfer costs the parts in flight on it,
// which go again on the others: the transfer completes intact.
func TestTransferSurvivesLostConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := link.PipeConfig{Rate: 2.5e6, Delay: 20 * time.Millisecond, Seed: 5}
		s := newSimLine(t, line, Config{LinkRate: line.Rate, RTT: 40 * time.Millisecond, Conns: 3})
		data := randomBytes(13, 4<<20)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.send(t.Context(), t, data)
		}()
		time.Sleep(500 * time.Millisecond)
		conns := s.pool.Conns()
		if len(conns) == 0 {
			t.Fatal("no connection up after 500 ms")
		}
		_ = conns[0].CloseWithError(0, "test: connection lost")
		<-done
		if r := s.pool.Estimates().Retries; r == 0 {
			t.Log("no part needed sending again (the closed connection carried none in flight)")
		}
	})
}
