package aimsrc

import (
	"maps"
	"slices"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// VolumeStatus is the state of one volume, as `aimwan src status` shows it.
type VolumeStatus struct {
	Name  string `json:"name"`
	State string `json:"state"` // StateNormal, StatePullAhead or StateResync
	// SrcDataBytes is Src Data: bytes of journal files (sealed and open)
	// waiting in the source buffer.
	SrcDataBytes int64 `json:"src_data_bytes"`
	// FilesWaiting is the sealed files not yet acked.
	FilesWaiting int64 `json:"files_waiting"`
	// OldestUnsent is the source time of the oldest journaled write not yet
	// acked by the far end (nil when nothing waits).
	OldestUnsent        *time.Time `json:"oldest_unsent,omitempty"`
	OldestUnsentSeconds float64    `json:"oldest_unsent_seconds"`
	// TimeLatency is Time Latency seen from the source, in seconds: now
	// minus the source time of the oldest record (a write, or an idle
	// volume's heartbeat watermark) not yet acked by the far end; 0 when
	// nothing waits. The destination's time_latency_s is the same lag seen
	// from the far end.
	TimeLatency float64 `json:"time_latency_s"`
	// Rate is the recent ack rate: bytes of journal files acked per second
	// over the last 30 s. ETA is the seconds to send Src Data at that rate:
	// 0 when nothing waits, -1 when something waits and nothing was acked
	// lately (the far end is unreachable or the first file is on its way).
	Rate       float64 `json:"rate_bytes_per_s"`
	ETA        float64 `json:"eta_s"`
	Heartbeats uint64  `json:"heartbeats"` // heartbeat files sealed since start
	// DirtyBytes is the volume bytes marked in the dirty bitmap.
	DirtyBytes   int64  `json:"dirty_bytes"`
	Writes       uint64 `json:"writes"`        // writes, zeroes and trims captured since start
	BytesWritten uint64 `json:"bytes_written"` // data bytes captured since start
	FilesPushed  uint64 `json:"files_shipped"` // files acked since start (JSON name kept for scripts)
	BytesPushed  uint64 `json:"bytes_shipped"`
	// CoalescedBytes is the payload bytes coalescing dropped (later writes
	// in the window overwrote them) since start; CoalesceRecordsIn/Out the
	// records of coalesced files before and after.
	CoalescedBytes     uint64 `json:"coalesced_bytes,omitempty"`
	CoalesceRecordsIn  uint64 `json:"coalesce_records_in,omitempty"`
	CoalesceRecordsOut uint64 `json:"coalesce_records_out,omitempty"`
	SizeBytes          int64  `json:"size_bytes"`
	LastPushError      string `json:"last_push_error,omitempty"`
	// BrokenFiles are sealed files that fail validation: kept on disk, never
	// pushed (the far end will wait for them); each with its error.
	BrokenFiles []string `json:"broken_files,omitempty"`
	// RefusedFiles are sealed files the far end refused with a verdict that
	// needs an operator (another journal stream, other contents under a
	// known number, records that do not follow): kept, retried slowly; each
	// with the far end's message, which says what to do.
	RefusedFiles []string `json:"refused_files,omitempty"`
	// Stream is the journal stream the volume's files belong to.
	Stream string `json:"stream"`
	// FilesSuperseded counts files of an old stream the far end refused,
	// dropped because an initialize supersedes them (since start).
	FilesSuperseded uint64     `json:"files_superseded,omitempty"`
	Init            InitStatus `json:"init"`
	// PausedBy says who paused the volume's pushing: PausedByVolume,
	// PausedByDestination, or "" (not paused).
	PausedBy string `json:"paused_by,omitempty"`
	// Drained says writes are refused (failover drain).
	Drained bool `json:"drained,omitempty"`

	refusals map[string]uint64 // by push code, for metrics
}

// Status is the state of the node.
type Status struct {
	Node        string              `json:"node"`
	Push        string              `json:"push"`
	BufferBytes int64               `json:"buffer_bytes"`
	BufferLimit int64               `json:"buffer_limit"` // 0: none
	Volumes     []VolumeStatus      `json:"volumes"`
	Groups      map[string][]string `json:"groups,omitempty"`
	// Link is the state of the connection to the next hop (--push).
	Link push.LinkState `json:"link"`
	// Paused is what is paused (aimwan src pause).
	Paused PauseState `json:"paused"`
}

// Status returns the node's current status.
func (n *Node) Status() Status {
	st := Status{Node: n.cfg.Node, Push: n.cfg.Push, BufferBytes: n.space.used(), BufferLimit: n.space.limit}
	for _, name := range n.order {
		vs := n.vols[name].status()
		vs.PausedBy, _ = n.pauses.of(name)
		st.Volumes = append(st.Volumes, vs)
	}
	st.Link, st.Paused = n.nextHop.Link(), n.pauses.state()
	for _, g := range n.cfg.Groups {
		if st.Groups == nil {
			st.Groups = map[string][]string{}
		}
		st.Groups[g.Name] = groupMembers(g)
	}
	return st
}

// oldestUnsent is the source time of the oldest write waiting, or zero.
func (v *volume) oldestUnsent() time.Time {
	t := v.pushing.oldest()
	if s := v.jw.OpenStats().FirstTime; !s.IsZero() && (t.IsZero() || s.Before(t)) {
		t = s
	}
	return t
}

func (v *volume) status() VolumeStatus {
	st := VolumeStatus{
		Name: v.name, State: v.State(), SrcDataBytes: v.srcData(), FilesWaiting: v.sealedFiles.Load(),
		DirtyBytes: v.dirty.dirtyBytes(), Writes: v.writes.Load(), BytesWritten: v.written.Load(),
		FilesPushed: v.pushedN.Load(), BytesPushed: v.pushedB.Load(), SizeBytes: v.size,
		CoalescedBytes: v.coalesced.Load(), CoalesceRecordsIn: v.coalIn.Load(), CoalesceRecordsOut: v.coalOut.Load(),
		Init: v.initJob.status(), Drained: v.drained.Load(),
	}
	now := v.now()
	if t := v.oldestUnsent(); !t.IsZero() {
		t = t.UTC()
		st.OldestUnsent = &t
		st.OldestUnsentSeconds = max(0, now.Sub(t).Seconds())
		st.TimeLatency = st.OldestUnsentSeconds
	}
	st.Rate = v.rate.rate(now)
	st.ETA = eta(st.SrcDataBytes, st.Rate)
	st.Heartbeats = v.heartbeats.Load()
	st.Stream = v.jw.Stream().String()
	v.pushing.mu.Lock()
	st.LastPushError = v.pushing.lastErr
	for _, seq := range slices.Sorted(maps.Keys(v.pushing.broken)) {
		st.BrokenFiles = append(st.BrokenFiles, journal.FileName(seq)+": "+v.pushing.broken[seq])
	}
	for _, seq := range slices.Sorted(maps.Keys(v.pushing.refused)) {
		st.RefusedFiles = append(st.RefusedFiles, journal.FileName(seq)+": "+v.pushing.refused[seq])
	}
	st.FilesSuperseded = v.pushing.superseded
	st.refusals = maps.Clone(v.pushing.refusals)
	v.pushing.mu.Unlock()
	return st
}
