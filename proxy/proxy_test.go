package proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport"
	"github.com/aimwan/aimwan/transport/push"
)

func TestPairDeliversFiles(t *testing.T) {
	for _, mode := range []Mode{ModeOptimize, ModePassthrough} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			p := newPair(t, pairOpts{mode: mode})
			blocks := randomBlocks(1, 256) // 1 MiB
			a := makeJournal(t, "vol-a", blocks)
			b := makeJournal(t, "vol-b", blocks) // the same data on another volume
			// vol-b goes once vol-a is acked, so that what vol-b costs does not
			// depend on how the two interleave.
			if err := pushAll(ctx, p.client, a); err != nil {
				t.Fatal(err)
			}
			wireA := counter(t, p.srcReg, "aimwan_proxy_wire_bytes_total")
			if err := pushAll(ctx, p.client, b); err != nil {
				t.Fatal(err)
			}
			checkArrived(t, p.dst, append(a, b...))

			logical := counter(t, p.srcReg, "aimwan_proxy_logical_bytes_total")
			wire := counter(t, p.srcReg, "aimwan_proxy_wire_bytes_total")
			var size int
			for _, f := range append(a, b...) {
				size += len(f.data)
			}
			if int(logical) != size {
				t.Errorf("logical bytes %v, want %d", logical, size)
			}
			t.Logf("%s: %d files, logical %.0f, wire %.0f (x%.2f)", mode, len(a)+len(b), logical, wire, logical/wire)
			switch mode {
			case ModePassthrough:
				if wire < logical {
					t.Errorf("pass-through sent %.0f wire bytes for %.0f logical", wire, logical)
				}
			case ModeOptimize:
				// Half of each block is a pattern, so vol-a compresses to about
				// half; vol-b repeats vol-a, so it costs references only.
				if wire > logical/3 {
					t.Errorf("optimize sent %.0f wire bytes for %.0f logical, want < 1/3", wire, logical)
				}
				if wireB := wire - wireA; wireB > logical/2/20 {
					t.Errorf("the repeated volume cost %.0f wire bytes for %.0f logical, want < 5%%", wireB, logical/2)
				}
				if hits := counter(t, p.srcReg, "aimwan_proxy_cache_hits_total"); hits == 0 {
					t.Error("no cache hits for a repeated volume")
				}
			}
		})
	}
}

func TestDuplicateFileAcked(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	p := newPair(t, pairOpts{})
	files := makeJournal(t, "vol", randomBlocks(2, 16))
	for range 2 { // the second round: dst says duplicate, src gets an ack
		if err := pushAll(ctx, p.client, files); err != nil {
			t.Fatal(err)
		}
	}
	checkArrived(t, p.dst, files)
}

func TestWipedDestinationCache(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPair(t, pairOpts{})
	blocks := randomBlocks(3, 128)
	first := makeJournal(t, "vol-a", blocks)
	if err := pushAll(ctx, p.client, first); err != nil {
		t.Fatal(err)
	}
	p.dest.Store().Wipe() // the source edge still believes the chunks are there
	second := makeJournal(t, "vol-b", blocks)
	if err := pushAll(ctx, p.client, second); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, append(first, second...))
	if n := counter(t, p.destReg, "aimwan_proxy_ref_misses_total"); n == 0 {
		t.Error("destination reported no misses after its cache was wiped")
	}
	if n := counter(t, p.srcReg, "aimwan_proxy_resent_bytes_total"); n == 0 {
		t.Error("source edge resent nothing after the destination's cache was wiped")
	}
	// After the misses the sender knows the new epoch: a third copy is
	// resolved again without asking.
	before := counter(t, p.destReg, "aimwan_proxy_ref_misses_total")
	third := makeJournal(t, "vol-c", blocks)
	if err := pushAll(ctx, p.client, third); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, third)
	if after := counter(t, p.destReg, "aimwan_proxy_ref_misses_total"); after != before {
		t.Errorf("misses went from %v to %v for data resent after the wipe", before, after)
	}
}

func TestDstNackRelayed(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	dst := &fakeDst{accept: func(o push.Offer) error {
		switch o.Volume {
		case "full":
			return push.ErrBufferFull
		case "unknown":
			return push.ErrUnknownVolume
		}
		return nil
	}}
	p := newPair(t, pairOpts{dst: dst})
	for _, tc := range []struct {
		volume string
		want   error
	}{{"full", push.ErrBufferFull}, {"unknown", push.ErrUnknownVolume}} {
		files := makeJournal(t, tc.volume, randomBlocks(4, 4))
		err := p.client.Push(ctx, files[0].offer, bytes.NewReader(files[0].data))
		if !errors.Is(err, tc.want) {
			t.Errorf("push to %s: %v, want %v", tc.volume, err, tc.want)
		}
	}
	ok := makeJournal(t, "fine", randomBlocks(5, 4))
	if err := pushAll(ctx, p.client, ok); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, ok)
}

func TestUnknownPeerRefused(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	p := newPair(t, pairOpts{wrongPin: true, retryFor: 500 * time.Millisecond})
	files := makeJournal(t, "vol", randomBlocks(6, 4))
	err := p.client.Push(ctx, files[0].offer, bytes.NewReader(files[0].data))
	if !errors.Is(err, push.ErrUnavailable) {
		t.Errorf("push through a refused WAN peer: %v, want ErrUnavailable", err)
	}
	if p.dst.count() != 0 {
		t.Error("a file reached dst through a refused peer")
	}
	if !strings.Contains(p.log.String(), "unknown fingerprint") {
		t.Errorf("no log line names the unknown fingerprint:\n%s", p.log.String())
	}
}

func TestChunkingMismatchRefused(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	p := newPair(t, pairOpts{destParams: dedupe.Params{AvgSize: 16 << 10}, retryFor: 500 * time.Millisecond})
	files := makeJournal(t, "vol", randomBlocks(7, 4))
	err := p.client.Push(ctx, files[0].offer, bytes.NewReader(files[0].data))
	if !errors.Is(err, push.ErrUnavailable) {
		t.Errorf("push with mismatched chunking: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(p.log.String(), "chunking parameters differ") {
		t.Errorf("no log line explains the refusal:\n%s", p.log.String())
	}
}

func TestPausedScheduleResumes(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	sched, err := transport.ParseSchedule("tz UTC\nmon 00:00-01:00 paused")
	if err != nil {
		t.Fatal(err)
	}
	// A clock that runs with real time from Monday 00:30 UTC, plus a jump the
	// test controls.
	base := time.Date(2026, 11, 16, 0, 30, 0, 0, time.UTC)
	t0 := time.Now()
	var jump atomic.Int64
	now := func() time.Time { return base.Add(time.Since(t0) + time.Duration(jump.Load())) }
	p := newPair(t, pairOpts{schedule: sched, now: now})
	if c := counter(t, p.srcReg, "aimwan_proxy_schedule_cap_bytes_per_second"); c != 0 {
		t.Fatalf("cap metric %v while paused, want 0", c)
	}
	files := makeJournal(t, "vol", randomBlocks(8, 8))
	done := make(chan error, 1)
	go func() { done <- pushAll(ctx, p.client, files) }()

	// While paused the file waits at the source edge.
	testkit.WaitFor(t, 10*time.Second, "the file to reach the source edge", func() bool {
		return counter(t, p.srcReg, "aimwan_proxy_files_in_flight") > 0
	})
	hold := time.NewTimer(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("push finished while the schedule was paused: %v", err)
	case <-hold.C:
	}
	if p.dst.count() != 0 {
		t.Fatal("a file reached dst while paused")
	}

	jump.Store(int64(time.Hour)) // 01:30: the pause is over
	p.src.Throttle().Refresh()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, files)
	if c := counter(t, p.srcReg, "aimwan_proxy_schedule_cap_bytes_per_second"); c != -1 {
		t.Errorf("cap metric %v after the pause, want -1 (unlimited)", c)
	}
}

func TestRestartedSourceLearnsHeldChunks(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPair(t, pairOpts{})
	blocks := randomBlocks(9, 128)
	first := makeJournal(t, "vol-a", blocks)
	if err := pushAll(ctx, p.client, first); err != nil {
		t.Fatal(err)
	}
	// A new source edge (empty peer index) learns the destination's held
	// list at the handshake: the same data costs references only.
	_, c2, reg2 := p.extraSource(t)
	second := makeJournal(t, "vol-b", blocks)
	if err := pushAll(ctx, c2, second); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, append(first, second...))
	logical := counter(t, reg2, "aimwan_proxy_logical_bytes_total")
	wire := counter(t, reg2, "aimwan_proxy_wire_bytes_total")
	if wire > logical/20 {
		t.Errorf("restarted source sent %.0f wire bytes for %.0f logical bytes the peer holds", wire, logical)
	}
	if n := counter(t, p.destReg, "aimwan_proxy_ref_misses_total"); n != 0 {
		t.Errorf("%v misses after learning the held list", n)
	}
}

func TestSeveralConnections(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPair(t, pairOpts{conns: 3})
	var files []jfile
	for i := range 4 {
		files = append(files, makeJournal(t, "vol"+strconv.Itoa(i), randomBlocks(uint64(20+i), 64))...)
	}
	if err := pushAll(ctx, p.client, files); err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, files)
	testkit.WaitFor(t, 10*time.Second, "3 connections", func() bool { return len(p.src.pool.Conns()) == 3 })
	if rtt := counter(t, p.srcReg, "aimwan_proxy_peer_rtt_seconds"); rtt <= 0 {
		t.Errorf("peer RTT metric %v, want > 0", rtt)
	}
	// Only the first handshake taught the peer index (here the store's
	// epoch: it held nothing yet); the others found it current.
	connected := strings.Count(p.log.String(), "WAN peer connected")
	if taught := connected - strings.Count(p.log.String(), "index_current=true"); connected != 3 || taught != 1 {
		t.Errorf("%d connections, %d taught the peer index; want 3 and 1", connected, taught)
	}
}

func TestChooseLevel(t *testing.T) {
	for _, tc := range []struct {
		queue   float64
		waiting int
		maxSecs float64
		want    dedupe.Level
	}{
		{0, 0, 1, dedupe.LevelDefault},
		{0.3, 0, 1, dedupe.LevelBetter},
		{0.3, 2, 1, dedupe.LevelFastest},
		{1, 5, 1, dedupe.LevelBest},
		{1.9, 0, 0.1, dedupe.LevelBest},                 // max needs 2 s of queue at least
		{2, 0, 0.1, dedupe.LevelMax},                    // ... which covers a fast max encode
		{5, 0, 4, dedupe.LevelBest},                     // a 4 s max encode needs 8 s of queue
		{8, 3, 4, dedupe.LevelMax},                      // waiting files do not matter when the link is the bottleneck
		{math.Inf(1), 0, math.Inf(1), dedupe.LevelBest}, // no cgo: never max
		{math.Inf(1), 0, 4, dedupe.LevelMax},            // paused link with bytes queued
	} {
		if got := chooseLevel(tc.queue, tc.waiting, tc.maxSecs); got != tc.want {
			t.Errorf("chooseLevel(%v, %d, %v) = %v, want %v", tc.queue, tc.waiting, tc.maxSecs, got, tc.want)
		}
	}
	if r := updateMaxRate(1e6, 2e6); r != 1.25e6 {
		t.Errorf("updateMaxRate(1e6, 2e6) = %v", r)
	}
	if r := updateMaxRate(1e6, math.Inf(1)); r != 1e6 {
		t.Errorf("updateMaxRate ignores an infinite sample: %v", r)
	}
}

func TestOversizedFileRefused(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	p := newPair(t, pairOpts{destMaxFile: 64 << 10})
	files := makeJournal(t, "vol", randomBlocks(30, 64)) // 256 KiB files
	err := p.client.Push(ctx, files[0].offer, bytes.NewReader(files[0].data))
	if !errors.Is(err, push.ErrBadOffer) {
		t.Errorf("push of a file above the destination's limit: %v, want ErrBadOffer", err)
	}
}

func TestScheduleCapHonoured(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	sched, err := transport.ParseSchedule("* 00:00-24:00 8mbit") // 1 MB/s
	if err != nil {
		t.Fatal(err)
	}
	p := newPair(t, pairOpts{mode: ModePassthrough, schedule: sched})
	files := makeJournal(t, "vol", randomBlocks(40, 256)) // ~1 MiB
	start := time.Now()
	if err := pushAll(ctx, p.client, files); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	wire := counter(t, p.srcReg, "aimwan_proxy_wire_bytes_total")
	rate := wire / elapsed.Seconds()
	t.Logf("%.0f wire bytes in %v: %.0f B/s under a 1e6 B/s cap", wire, elapsed.Round(time.Millisecond), rate)
	// The bucket holds 20ms of traffic: the sender may never beat the cap by
	// more than that.
	if floor := time.Duration((wire - 20e3) / 1e6 * float64(time.Second)); elapsed < floor {
		t.Errorf("sent %.0f bytes in %v, faster than the cap allows (%v)", wire, elapsed, floor)
	}
	checkArrived(t, p.dst, files)
}

func TestArrivalsCountOnlyEarlierFiles(t *testing.T) {
	var a arrivals
	first, second, third := a.begin(), a.begin(), a.begin()
	if n, _ := a.earlier(third.seq); n != 2 {
		t.Errorf("before the third: %d arriving, want 2", n)
	}
	if n, _ := a.earlier(first.seq); n != 0 {
		t.Errorf("before the first: %d arriving, want 0", n)
	}
	_, changed := a.earlier(third.seq)
	second.done()
	second.done() // idempotent
	select {
	case <-changed:
	default:
		t.Error("no change signalled when a file finished")
	}
	if n, _ := a.earlier(third.seq); n != 1 {
		t.Errorf("after the second finished: %d arriving before the third, want 1", n)
	}
	first.done()
	third.done()
}

// TestCanceledCommitLeavesEncodeQueue: a file waiting for the encoder slot
// (held by an earlier file that waits for the WAN) returns once its push is
// canceled (src gone), instead of holding its memory and goroutine until
// every file before it is done.
func TestCanceledCommitLeavesEncodeQueue(t *testing.T) {
	id, err := transport.GenerateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// No peer runs and Serve is not called: the first file waits for a
	// WAN connection (for RetryFor) while holding the encoder slot.
	s, err := NewSource(SourceConfig{Peer: "127.0.0.1:1", Identity: id, Pins: transport.Pins{id.Fingerprint}, LANPins: lanPins(lanSrc),
		RetryFor: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	files := makeJournal(t, "vol-a", randomBlocks(21, 8))
	commit := func(ctx context.Context, f jfile) error {
		k, err := s.Accept(ctx, push.Hello{Node: "src"}, f.offer)
		if err != nil {
			return err
		}
		if _, err := k.Write(f.data); err != nil {
			return err
		}
		return k.Commit(ctx)
	}
	firstCtx, cancelFirst := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- commit(firstCtx, files[0]) }()
	defer func() { cancelFirst(); <-first }()
	testkit.WaitFor(t, 10*time.Second, "the first file holding the encoder slot", func() bool { s.encq.mu.Lock(); defer s.encq.mu.Unlock(); return s.encq.busy })

	gone, cancel := context.WithCancel(t.Context())
	cancel() // src went away while the second file waited
	second := make(chan error, 1)
	go func() { second <- commit(gone, files[len(files)-1]) }()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled commit: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a canceled commit still waits for the encoder slot")
	}
	if got := s.mem.Load(); got != files[0].offer.Size {
		t.Errorf("%d bytes held after the canceled commit, want only the first file's %d", got, files[0].offer.Size)
	}
}

// TestAdaptiveLevelMax: while the WAN queue holds more than LevelMax takes
// (here: the schedule pauses the link with files queued, so the queue lasts
// for ever, whatever this machine's speed), the source edge switches to
// LevelMax (libzstd -19); once the link opens the files still arrive byte for
// byte.
func TestAdaptiveLevelMax(t *testing.T) {
	if !dedupe.MaxAvailable() {
		t.Skip("no cgo: level max unavailable")
	}
	ctx := testCtx(t, 240*time.Second) // generous: -race on a loaded box encodes slowly; a pass takes seconds
	sched, err := transport.ParseSchedule("tz UTC\nmon 00:00-01:00 paused\n* 00:00-24:00 2mbit")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 16, 0, 30, 0, 0, time.UTC) // a Monday, paused
	t0 := time.Now()
	var jump atomic.Int64
	now := func() time.Time { return base.Add(time.Since(t0) + time.Duration(jump.Load())) }
	p := newPair(t, pairOpts{schedule: sched, now: now})
	files := makeJournal(t, "vol", randomBlocks(41, 1024)) // 16 files of 256 KiB
	done := make(chan error, 1)
	go func() { done <- pushAll(ctx, p.client, files) }()
	testkit.WaitFor(t, 180*time.Second, "a file encoded at level max while the link is paused", func() bool {
		return labelled(t, p.srcReg, "aimwan_proxy_encoded_files_total", "level", "max") > 0
	})
	jump.Store(int64(time.Hour)) // 01:30: the pause is over, 2 Mbit/s
	p.src.Throttle().Refresh()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkArrived(t, p.dst, files)
	levels := map[string]float64{}
	for _, l := range []string{"fastest", "default", "better", "best", "max"} {
		levels[l] = labelled(t, p.srcReg, "aimwan_proxy_encoded_files_total", "level", l)
	}
	t.Logf("files by level: %v", levels)
}
