package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/ctlapi"
)

// harness is one run: the chain, the model and what happened so far.
type harness struct {
	cfg    Config
	log    *slog.Logger
	ch     *chain
	model  *model
	pool   *contentPool
	w      *writer
	kinds  []string
	chattr bool
	stats  struct {
		DstRefusals int64
		PullAheads  int
	}
}

// snap is a marker placed in a round, with the expected images at it.
type snap struct {
	label  string
	images map[string][]byte // volume -> expected content
}

// Run runs cfg.Rounds rounds (or until cfg.Duration passes) and returns the
// report. The error is for a run that could not go on (a daemon would not
// start, a round could not drain); the report then says how far it got.
// Bytes lost show in the report (Lost() > 0), not as an error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "aimwan-chaos-"); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	linkFlags, err := haveLink(ctx, cfg)
	if err != nil {
		return nil, err
	}
	link := linkFlags != nil
	h := &harness{cfg: cfg, log: cfg.Logger, model: newModel(cfg.VolumeSize), pool: newContentPool(cfg.Seed),
		chattr: canChattr(dir)}
	disk := ""
	if wantKind(cfg, DstDiskFull) {
		if d := filepath.Join(dir, "dst", "disk"); mountDisk(d) {
			disk = d
			defer unmountDisk(d)
		}
	}
	h.kinds = available(cfg, linkFlags, h.chattr, disk != "")
	rep := newReport(cfg, dir, link, h.kinds)
	start := time.Now()
	defer func() { rep.finish(start, h) }()
	if h.ch, err = newChain(ctx, cfg, dir, linkFlags, disk); err != nil {
		return rep, err
	}
	defer h.ch.stopAll()
	if err := h.ch.start(ctx); err != nil {
		return rep, err
	}
	h.w = newWriter(h.ch.nbdAddr)
	defer h.w.close()
	h.log.Info("chaos: chain up", "dir", dir, "link", link, "faults", h.kinds, "seed", cfg.Seed)
	for r := 1; r <= cfg.Rounds; r++ {
		if cfg.Duration > 0 && time.Since(start) > cfg.Duration {
			h.log.Info("chaos: duration reached", "rounds", r-1)
			break
		}
		rr, err := h.round(ctx, r)
		rep.addRound(rr)
		if err != nil {
			rep.Error = err.Error()
			return rep, err
		}
	}
	return rep, nil
}

// wantKind reports whether cfg asks for fault kind k (all kinds when none
// are named).
func wantKind(cfg Config, k string) bool {
	return len(cfg.Faults) == 0 || slices.Contains(cfg.Faults, k)
}

// haveLink decides whether the link simulator sits between the proxies,
// and returns the flags its --help lists.
func haveLink(ctx context.Context, cfg Config) (map[string]bool, error) {
	if cfg.Link == "off" || cfg.Direct {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cfg.Bin, "sim", "link", "--help").CombinedOutput()
	flags := helpFlags(string(out))
	if err != nil || !flags["listen"] || !flags["to"] {
		if cfg.Link == "on" {
			return nil, fmt.Errorf("%w: link on, but %s sim link --help failed or lacks --listen/--to: %v\n%s", ErrConfig, cfg.Bin, err, out)
		}
		return nil, nil
	}
	return flags, nil
}

// helpFlags returns the flag names a Go flag usage text lists ("  -name ...").
func helpFlags(help string) map[string]bool {
	flags := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "-") {
			flags[strings.TrimLeft(f[0], "-")] = true
		}
	}
	return flags
}

// round runs one round: batches with faults, drain, check.
func (h *harness) round(ctx context.Context, r int) (rr RoundReport, err error) {
	rng := rand.New(rand.NewPCG(h.cfg.Seed, uint64(r)))
	rr = RoundReport{Round: r}
	start := time.Now()
	defer func() { rr.ElapsedS = time.Since(start).Seconds() }()
	var snaps []snap
	batches := max(h.cfg.FaultsPerRound, 1)
	for b := 1; b <= batches; b++ {
		var f *fault
		minBytes := 0
		if h.cfg.FaultsPerRound > 0 && len(h.kinds) > 0 {
			pf := planFault(rng, h.kinds, h.cfg.WritesPerBatch)
			f = &pf
			if f.Kind == SrcBufferFull {
				minBytes = 4 * 384 << 10 // well past the tiny limit
			}
		}
		ops := genBatch(rng, h.cfg, h.pool, minBytes)
		if f != nil && f.At >= len(ops) {
			f.At = len(ops) - 1
		}
		label := fmt.Sprintf("r%03d-b%02d", r, b)
		vols := volumeNames
		if rng.IntN(4) == 0 { // now and then a volume marker instead of a group marker
			vols = []string{volumeNames[rng.IntN(len(volumeNames))]}
		}
		if err := h.batch(ctx, ops, f, label, vols, &rr); err != nil {
			return rr, fmt.Errorf("round %d batch %d (%s): %w", r, b, faultName(f), err)
		}
		s := snap{label: label, images: map[string][]byte{}}
		for _, v := range vols {
			s.images[v] = h.model.copyOf(v)
		}
		snaps = append(snaps, s)
	}
	drainStart := time.Now()
	anomalies, err := h.drain(ctx)
	if err != nil {
		return rr, fmt.Errorf("round %d: %w", r, err)
	}
	rr.Anomalies = anomalies
	rr.DrainS = time.Since(drainStart).Seconds()
	if err := h.check(snaps, &rr); err != nil {
		return rr, fmt.Errorf("round %d: %w", r, err)
	}
	h.log.Info("chaos: round checked", "round", r, "faults", len(rr.Faults), "bytes_checked", rr.BytesChecked,
		"bytes_lost", rr.BytesLost, "drain", time.Duration(rr.DrainS*float64(time.Second)).Round(time.Millisecond),
		"elapsed", time.Since(start).Round(time.Millisecond))
	return rr, nil
}

func faultName(f *fault) string {
	if f == nil {
		return "no fault"
	}
	return f.String()
}

// batch writes ops with fault f (nil: none) injected, flushes, and places
// the marker label on vols.
func (h *harness) batch(ctx context.Context, ops []op, f *fault, label string, vols []string, rr *RoundReport) error {
	if f != nil {
		rr.Faults = append(rr.Faults, *f)
		h.log.Info("chaos: fault", "label", label, "fault", f.String())
		if err := h.setup(ctx, *f); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
		if f.Kind == SrcBufferFull {
			h.w.reset()
		}
	}
	batchDone := make(chan struct{})
	faultDone := make(chan error, 1)
	started := false
	trigger := func(i int) {
		if f != nil && !started && f.At == i {
			started = true
			go func() { faultDone <- h.inject(ctx, *f, batchDone) }()
		}
	}
	err := h.writeOps(ctx, ops, trigger)
	if err != nil && f != nil && killsSrc(f.Kind) && started {
		// src died under the batch: once it is back, write the whole
		// batch again (what an unflushed batch left is undefined).
		close(batchDone)
		if ferr := <-faultDone; ferr != nil {
			return fmt.Errorf("fault: %w", ferr)
		}
		h.log.Info("chaos: src killed mid-batch; writing the batch again", "label", label, "first_error", err)
		h.w.reset()
		rr.Rewrites++
		started = true // the fault is over
		if err = h.writeOps(ctx, ops, func(int) {}); err != nil {
			return fmt.Errorf("batch again after the src restart: %w", err)
		}
	} else {
		if err != nil {
			return fmt.Errorf("writes: %w", err)
		}
		close(batchDone)
		if started {
			if ferr := <-faultDone; ferr != nil {
				return fmt.Errorf("fault: %w", ferr)
			}
			if killsSrc(f.Kind) || f.Kind == SrcBufferFull {
				h.w.reset()
			}
		}
	}
	for _, o := range ops {
		h.model.apply(o)
		if o.kind == opWrite {
			rr.BytesWritten += int64(o.n)
		}
	}
	rr.Requests += len(ops)
	if err := h.marker(ctx, label, vols); err != nil {
		return err
	}
	if f != nil && f.At < 0 {
		if err := sleepCtx(ctx, f.Delay); err != nil {
			return err
		}
		if err := h.inject(ctx, *f, closedChan()); err != nil {
			return fmt.Errorf("fault after the marker: %w", err)
		}
		if killsSrc(f.Kind) {
			h.w.reset()
		}
	}
	return nil
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// writeOps issues ops and a flush on every volume, calling trigger before
// each request.
func (h *harness) writeOps(ctx context.Context, ops []op, trigger func(int)) error {
	for i, o := range ops {
		trigger(i)
		if err := h.w.do(ctx, o); err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
	}
	return h.w.flush(ctx)
}

// marker places a snapshot marker on vols (a group marker for the whole
// group), retrying while src restarts or resyncs (bounded).
func (h *harness) marker(ctx context.Context, label string, vols []string) error {
	req := aimsrc.MarkerRequest{Kind: aimsrc.MarkerSnapshot, Label: label}
	if len(vols) == len(volumeNames) {
		req.Group = groupName
	} else {
		req.Volume = vols[0]
	}
	c := h.srcClient()
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := c.Marker(cctx, req)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, aimsrc.ErrBadRequest) || errors.Is(err, aimsrc.ErrNoSuchVolume) || time.Now().After(deadline) {
			return fmt.Errorf("marker %s (attempt %d): %w\nsrc log:\n%s", label, attempt+1, err, h.ch.src.Tail(20))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (h *harness) srcStatus(ctx context.Context) (aimsrc.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return h.srcClient().Status(ctx)
}

// srcClient talks to src's control API with the token src wrote at start.
func (h *harness) srcClient() *aimsrc.Client {
	return &aimsrc.Client{Addr: h.ch.srcControl, TokenFile: ctlapi.TokenPath(h.ch.srcBuffer())}
}

func (h *harness) dstStatus(ctx context.Context) (aimdst.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return aimdst.FetchStatus(ctx, h.ch.dstControl, ctlapi.TokenPath(h.ch.dstBuffer()))
}

// waitSrcConsistent waits until no volume is in pull-ahead or resync.
func (h *harness) waitSrcConsistent(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := h.srcStatus(ctx)
		if err == nil {
			ok := true
			for _, v := range st.Volumes {
				ok = ok && v.State == aimsrc.StateNormal && v.DirtyBytes == 0
			}
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("src still in pull-ahead or resync after %v (last status error: %v):\n%s", limit, err, h.ch.src.Tail(20))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
