package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"time"
)

// fault is one planned fault of a batch.
type fault struct {
	Kind string `json:"kind"`
	// At is the index of the request in the batch at which the fault
	// starts; -1: right after the batch's marker.
	At int `json:"at"`
	// Delay is the wait between the marker and a fault with At -1 (so
	// that it hits the marker on its way or the snapshot being taken).
	Delay time.Duration `json:"delay_ns,omitempty"`
	// Down is how long the daemon stays down or the condition lasts.
	Down time.Duration `json:"down_ns"`
}

func (f fault) String() string {
	at := fmt.Sprintf("at request %d", f.At)
	if f.At < 0 {
		at = fmt.Sprintf("%v after the marker", f.Delay.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s %s, down %v", f.Kind, at, f.Down.Round(time.Millisecond))
}

// planFault picks a fault from kinds for a batch of n requests.
func planFault(rng *rand.Rand, kinds []string, n int) fault {
	f := fault{Kind: kinds[rng.IntN(len(kinds))], At: rng.IntN(n + n/3 + 1)}
	if f.At >= n {
		f.At = -1
		f.Delay = time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
	}
	switch f.Kind {
	case SrcBufferFull, DstBufferFull:
		f.At = 0 // the batch is written while the buffer is tiny
	case KillSrc, KillAll:
		if f.At < 0 {
			f.At = rng.IntN(n)
		}
	}
	switch f.Kind {
	case LinkOutage, DstReadOnly, DstMissing, DstBufferFull, DstDiskFull, LinkLoss, LinkReorder, LinkDuplicate:
		f.Down = time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	default:
		f.Down = time.Duration(rng.Int64N(int64(500 * time.Millisecond)))
	}
	return f
}

// available returns the fault kinds this run can inject: link faults need
// the link simulator with the matching flag.
func available(cfg Config, linkFlags map[string]bool, chattr, tmpfs bool) []string {
	kinds := cfg.Faults
	if len(kinds) == 0 {
		kinds = AllFaults
	}
	var out []string
	for _, k := range kinds {
		switch {
		case cfg.Direct && (slices.Contains(proxyFaults, k) || slices.Contains(linkFaults, k)):
		case slices.Contains(linkFaults, k) && linkFlag(k, linkFlags) == "":
		case k == DstReadOnly && !chattr:
		case k == DstDiskFull && !tmpfs:
		default:
			out = append(out, k)
		}
	}
	return out
}

// canChattr reports whether chattr +i works in dir (root on ext4, xfs,
// btrfs...): dst-readonly needs it, since root ignores file modes.
func canChattr(dir string) bool {
	p := dir + "/chattr-probe"
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return false
	}
	defer os.Remove(p)
	if exec.Command("chattr", "+i", p).Run() != nil {
		return false
	}
	return exec.Command("chattr", "-i", p).Run() == nil
}

// setImmutable runs chattr +i or -i on the destination volumes.
func (h *harness) setImmutable(on bool) error {
	flag := "-i"
	if on {
		flag = "+i"
	}
	for _, v := range volumeNames {
		if out, err := exec.Command("chattr", flag, h.ch.dstImages[v]).CombinedOutput(); err != nil {
			return fmt.Errorf("chattr %s %s: %w: %s", flag, h.ch.dstImages[v], err, out)
		}
	}
	return nil
}

// moveVolumes moves the destination volume files away (or back).
func (h *harness) moveVolumes(away bool) error {
	for _, v := range volumeNames {
		from, to := h.ch.dstImages[v], h.ch.dstImages[v]+".away"
		if !away {
			from, to = to, from
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("move destination volume: %w", err)
		}
	}
	return nil
}

// blockDestage makes the destination volumes unusable (immutable where
// chattr works, else moved away) or usable again.
func (h *harness) blockDestage(on bool) error {
	if h.chattr {
		return h.setImmutable(on)
	}
	return h.moveVolumes(on)
}

// volumesGone restarts dst with its volume files moved away (dst holds them
// offline and keeps receiving) until wait returns, then moves them back.
func (h *harness) volumesGone(ctx context.Context, wait func() error) error {
	h.ch.dst.Kill()
	if err := h.moveVolumes(true); err != nil {
		return err
	}
	err := h.ch.dst.Start(ctx)
	if err == nil {
		err = wait()
	}
	if rerr := h.moveVolumes(false); rerr != nil {
		return rerr
	}
	return err
}

// setup prepares a fault that must be in place before the batch's first
// request.
func (h *harness) setup(ctx context.Context, f fault) error {
	if f.Kind != SrcBufferFull {
		return nil
	}
	h.ch.src.Stop()
	h.ch.src.SetArgs(h.ch.srcArgs(srcTinyLimit))
	if err := h.ch.src.Start(ctx); err != nil {
		return err
	}
	h.ch.drainer().Freeze() // nothing drains: the buffer fills
	return nil
}

// inject runs a fault; batchDone is closed once the batch's requests were
// acknowledged and flushed. It returns once the fault is over and every
// daemon is up again.
func (h *harness) inject(ctx context.Context, f fault, batchDone <-chan struct{}) error {
	ch := h.ch
	wait := func() error { // until the batch is done, then Down more
		select {
		case <-batchDone:
		case <-ctx.Done():
			return ctx.Err()
		}
		return sleepCtx(ctx, f.Down)
	}
	switch f.Kind {
	case KillSrc:
		return restart(ctx, ch.src, f.Down)
	case KillSrcProxy:
		return restart(ctx, ch.proxySrc, f.Down)
	case KillDstProxy:
		return restart(ctx, ch.proxyDst, f.Down)
	case KillDst:
		return restart(ctx, ch.dst, f.Down)
	case KillAll:
		for _, p := range ch.all.Procs() {
			p.Kill()
		}
		if err := sleepCtx(ctx, f.Down); err != nil {
			return err
		}
		return ch.start(ctx)
	case WipeCache:
		ch.proxyDst.Kill()
		if err := os.RemoveAll(ch.cache); err != nil {
			return fmt.Errorf("wipe cache: %w", err)
		}
		if err := sleepCtx(ctx, f.Down); err != nil {
			return err
		}
		return ch.proxyDst.Start(ctx)
	case LinkOutage:
		p := ch.proxyDst // without the simulator: the far edge goes silent
		switch {
		case ch.linkProc != nil:
			p = ch.linkProc
		case ch.direct:
			p = ch.dst
		}
		p.Freeze()
		defer p.Thaw()
		return sleepCtx(ctx, f.Down)
	case LinkLoss, LinkReorder, LinkDuplicate:
		return h.impairLink(ctx, f.Kind, wait)
	case DstReadOnly:
		return h.readOnly(ctx, wait)
	case DstMissing:
		return h.volumesGone(ctx, wait)
	case DstDiskFull:
		return h.diskFull(ctx, wait)
	case DstBufferFull:
		return h.dstBufferFull(ctx, wait)
	case SrcBufferFull:
		return h.srcBufferFull(ctx, batchDone)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// impairLink restarts the link simulator impaired until wait returns, then
// restarts it clean.
func (h *harness) impairLink(ctx context.Context, impair string, wait func() error) error {
	l := h.ch.linkProc // stateless: SIGKILL is the quickest way to change it
	l.Kill()
	l.SetArgs(h.ch.linkArgs(impair))
	if err := l.Start(ctx); err != nil {
		return err
	}
	err := wait()
	l.Kill()
	l.SetArgs(h.ch.linkArgs(""))
	if serr := l.Start(ctx); serr != nil {
		return serr
	}
	return err
}

// readOnly makes the destination volumes immutable and restarts dst (which
// then holds them offline and keeps receiving) until wait returns.
func (h *harness) readOnly(ctx context.Context, wait func() error) error {
	if err := h.setImmutable(true); err != nil {
		return err
	}
	h.ch.dst.Kill()
	err := h.ch.dst.Start(ctx)
	if err == nil {
		err = wait()
	}
	if rerr := h.setImmutable(false); rerr != nil {
		return rerr
	}
	return err
}

// dstBufferFull restarts dst with a tiny buffer limit and its volumes
// blocked (so nothing destages and the buffer fills) until wait returns, then
// restarts it as before. It counts the refusals dst reported.
func (h *harness) dstBufferFull(ctx context.Context, wait func() error) error {
	d := h.ch.dst
	d.Kill()
	d.SetArgs(h.ch.dstArgs(dstTinyLimit))
	if err := h.blockDestage(true); err != nil {
		return err
	}
	err := d.Start(ctx)
	if err == nil {
		err = wait()
	}
	h.stats.DstRefusals += h.dstRefusals(ctx)
	if rerr := h.blockDestage(false); rerr != nil {
		return rerr
	}
	d.Stop()
	d.SetArgs(h.ch.dstArgs(""))
	if serr := d.Start(ctx); serr != nil {
		return serr
	}
	return err
}

// srcBufferFull (after setup) waits for the batch, notes whether src went
// to pull-ahead, lets the buffer drain, waits for the resync and restarts
// src without the limit.
func (h *harness) srcBufferFull(ctx context.Context, batchDone <-chan struct{}) error {
	select {
	case <-batchDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if st, err := h.srcStatus(ctx); err == nil {
		for _, v := range st.Volumes {
			if v.DirtyBytes > 0 || v.State != "normal" {
				h.stats.PullAheads++
				break
			}
		}
	}
	h.ch.drainer().Thaw()
	err := h.waitSrcConsistent(ctx, 90*time.Second)
	h.ch.src.Stop()
	h.ch.src.SetArgs(h.ch.srcArgs(""))
	if serr := h.ch.src.Start(ctx); serr != nil {
		return serr
	}
	return err
}
