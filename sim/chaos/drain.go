package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// drain waits until src holds nothing (Src Data 0, no file waiting, no
// dirty region) and dst has destaged everything it received. On timeout the
// error names the stuck daemon and carries its log tail. Anomalies are
// wrong figures seen once drained (a negative buffer count).
func (h *harness) drain(ctx context.Context) (anomalies []string, err error) {
	deadline := time.Now().Add(h.cfg.DrainTimeout)
	var why string
	for {
		if crashed := h.ch.crashed(); len(crashed) > 0 {
			p := crashed[0]
			return nil, fmt.Errorf("%s exited on its own during the round; log tail:\n%s", p.Name, p.Tail(40))
		}
		var done bool
		done, why, anomalies = h.drained(ctx)
		if done {
			return anomalies, nil
		}
		if time.Now().After(deadline) {
			return nil, h.stuck(why)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// drained reports whether the chain is empty, or what still waits, naming
// the daemon ("src: ..." or "dst: ..."). A dst volume with nothing waiting
// but a negative buffer count is drained, with an anomaly.
func (h *harness) drained(ctx context.Context) (bool, string, []string) {
	st, err := h.srcStatus(ctx)
	if err != nil {
		return false, "src: status: " + err.Error(), nil
	}
	for _, v := range st.Volumes {
		if v.SrcDataBytes != 0 || v.FilesWaiting != 0 || v.DirtyBytes != 0 || v.State != aimsrc.StateNormal {
			return false, fmt.Sprintf("src: volume %s: state %s, src data %d bytes, %d files waiting, %d dirty bytes, last push error %q",
				v.Name, v.State, v.SrcDataBytes, v.FilesWaiting, v.DirtyBytes, v.LastPushError), nil
		}
	}
	ds, err := h.dstStatus(ctx)
	if err != nil {
		return false, "dst: status: " + err.Error(), nil
	}
	var anomalies []string
	for _, v := range ds.Volumes {
		if v.FilesWaiting != 0 || v.Receiving != 0 || v.BufferBytes > 0 || v.Offline {
			return false, fmt.Sprintf("dst: volume %s: state %q, %d files waiting (next %d, gaps %v), %d receiving, %d buffer bytes",
				v.Volume, v.State, v.FilesWaiting, v.NextFile, v.Gaps, v.Receiving, v.BufferBytes), nil
		}
		if v.BufferBytes < 0 {
			anomalies = append(anomalies, fmt.Sprintf("dst volume %s: buffer bytes %d with nothing waiting (accounting below zero)",
				v.Volume, v.BufferBytes))
		}
	}
	return true, "", anomalies
}

// stuck builds the error of a round that could not drain.
func (h *harness) stuck(why string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "could not drain within %v: stuck: %s", h.cfg.DrainTimeout, why)
	names := []*procs.Proc{h.ch.src, h.ch.proxySrc, h.ch.proxyDst, h.ch.dst, h.ch.linkProc}
	if strings.HasPrefix(why, "dst") {
		names = []*procs.Proc{h.ch.dst, h.ch.proxyDst}
	}
	for _, p := range names {
		if p == nil {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s log tail (%s):\n%s", p.Name, p.Log, p.Tail(25))
	}
	return fmt.Errorf("%s", b.String())
}

// check compares every snapshot of the round and the final volumes (at dst
// and at src) with the model, counting checked and differing bytes. A
// missing snapshot counts in full. Snapshots that match are removed, to
// keep the work folder small.
func (h *harness) check(snaps []snap, rr *RoundReport) error {
	for _, s := range snaps {
		for vol, want := range s.images {
			path := aimdst.SnapshotPath(h.ch.snapshots, vol, s.label)
			lost, err := compareFile(path, want)
			if err != nil {
				return err
			}
			rr.Snapshots++
			rr.BytesChecked += int64(len(want))
			rr.BytesLost += lost
			if lost > 0 {
				rr.Mismatches = append(rr.Mismatches, fmt.Sprintf("snapshot %s/%s: %d bytes differ (%s)", vol, s.label, lost, path))
				continue
			}
			os.Remove(path)
		}
	}
	for _, vol := range volumeNames {
		want := h.model.vols[vol]
		lost, err := compareFile(h.ch.dstImages[vol], want)
		if err != nil {
			return err
		}
		rr.BytesChecked += int64(len(want))
		rr.BytesLost += lost
		if lost > 0 {
			rr.Mismatches = append(rr.Mismatches, fmt.Sprintf("destination volume %s: %d bytes differ", vol, lost))
		}
		srcDiff, err := compareFile(h.ch.srcImages[vol], want)
		if err != nil {
			return err
		}
		if srcDiff > 0 {
			rr.SrcMismatch += srcDiff
			rr.Mismatches = append(rr.Mismatches, fmt.Sprintf("source image %s: %d bytes differ from what was acknowledged", vol, srcDiff))
		}
	}
	return nil
}

// compareFile returns how many bytes of the file at path differ from want
// (bytes missing from a short or absent file count as differing; bytes past
// len(want) are ignored).
func compareFile(path string, want []byte) (int64, error) {
	got, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return int64(len(want)), nil
	}
	if err != nil {
		return 0, fmt.Errorf("check %s: %w", path, err)
	}
	return diffBytes(got, want), nil
}

// diffBytes counts the bytes of want that got does not hold at the same
// offset.
func diffBytes(got, want []byte) int64 {
	var n int64
	if len(got) < len(want) {
		n = int64(len(want) - len(got))
		want = want[:len(got)]
	}
	const step = 64 << 10
	for off := 0; off < len(want); off += step {
		end := min(off+step, len(want))
		if bytes.Equal(got[off:end], want[off:end]) {
			continue
		}
		for i := off; i < end; i++ {
			if got[i] != want[i] {
				n++
			}
		}
	}
	return n
}
