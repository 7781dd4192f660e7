package aimdst

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Status is the state of a destination node, as served on the control
// endpoint and shown by `aimwan dst status`.
type Status struct {
	Node        string         `json:"node"`
	Time        time.Time      `json:"time"`
	BufferBytes int64          `json:"buffer_bytes"` // all volumes
	BufferLimit int64          `json:"buffer_limit"`
	BufferFull  bool           `json:"buffer_full"` // new files are being refused (the source keeps them)
	Volumes     []VolumeStatus `json:"volumes"`
	// GroupErrors are group markers that could not be taken on every
	// member (a member not held here, no member list), newest last.
	GroupErrors []GroupError `json:"group_errors,omitempty"`
	// Groups are the consistency groups: Time Latency, last consistent
	// point and last snapshot of each.
	Groups []GroupStatus `json:"groups,omitempty"`
}

// VolumeStatus is the state of one destination volume.
type VolumeStatus struct {
	Volume       string    `json:"volume"`
	Path         string    `json:"path"`
	State        string    `json:"state"` // idle, destaging, waiting for file N, taking snapshot L, running hook L, waiting for group..., offline: reason, stalled: error
	Offline      bool      `json:"offline"`
	DestagedFile uint64    `json:"destaged_file"` // last journal file fully destaged
	DestagedSeq  uint64    `json:"destaged_seq"`  // last record destaged durably
	LastMarker   string    `json:"last_marker,omitempty"`
	NewestWrite  time.Time `json:"newest_write,omitzero"` // source timestamp of the newest destaged write
	// CompleteUntil is the source time up to which the volume is complete:
	// the watermark of the newest destaged record (a write, or a heartbeat
	// on an idle volume). TimeLatency is now minus it, in seconds: about 0
	// when caught up, growing while something is unreplicated or the
	// source unreachable; 0 before the first file.
	CompleteUntil time.Time `json:"complete_until,omitzero"`
	TimeLatency   float64   `json:"time_latency_s"`
	// LastMarkerTime is the source time of the last marker passed;
	// LastSnapshot and LastSnapshotTime the label and source time of the
	// last snapshot taken.
	LastMarkerTime   time.Time `json:"last_marker_time,omitzero"`
	LastSnapshot     string    `json:"last_snapshot,omitempty"`
	LastSnapshotTime time.Time `json:"last_snapshot_time,omitzero"`
	BufferBytes      int64     `json:"buffer_bytes"`        // held for this volume, partial and quarantined files included
	FilesWaiting     int       `json:"files_waiting"`       // sealed files held, not yet destaged
	NextFile         uint64    `json:"next_file"`           // the file destage needs next
	Gaps             []Gap     `json:"gaps,omitempty"`      // missing files that hold back later ones
	Receiving        int       `json:"receiving"`           // files being received now
	LogicalBytes     int64     `json:"logical_bytes"`       // write bytes destaged since start
	RefusedFull      uint64    `json:"refused_buffer_full"` // offers refused for a full buffer since start
	// Stream is the journal stream the volume replicates ("" until bound).
	Stream string `json:"stream,omitempty"`
	// Previous is the binding an initialize's new stream replaced.
	Previous *Binding `json:"previous_binding,omitempty"`
	// Refused are files refused lately (another stream, other contents
	// under a known number, records that do not follow), newest per file.
	Refused []Refusal `json:"refused,omitempty"`
	// Quarantined are files moved aside, not applied, kept for the
	// operator.
	Quarantined []QuarantinedFile `json:"quarantined,omitempty"`
	// Promoted is the volume's promotion (failover): it is writable, takes
	// no files, and Kept holds what was not applied.
	Promoted *Promotion `json:"promoted,omitempty"`
	// LastError is the newest refusal or quarantine, for a one-line view.
	LastError string `json:"last_error,omitempty"`
}

// fullWindow is how long after refusing a file the buffer counts as full in
// status.
const fullWindow = 10 * time.Second

// Status returns the node's current state.
func (n *Node) Status() Status {
	now := n.cfg.Now()
	st := Status{Node: n.cfg.Node, Time: now.UTC(), BufferBytes: n.bufBytes.Load(), BufferLimit: n.cfg.BufferLimit}
	st.BufferFull = st.BufferBytes >= st.BufferLimit
	for _, v := range n.vols {
		vs, lastFull := v.status(now)
		if !lastFull.IsZero() && now.Sub(lastFull) < fullWindow {
			st.BufferFull = true
		}
		st.Volumes = append(st.Volumes, vs)
	}
	sort.Slice(st.Volumes, func(i, j int) bool { return st.Volumes[i].Volume < st.Volumes[j].Volume })
	st.GroupErrors = n.groups.errorList()
	st.Groups = n.groupStatus(now, st.Volumes)
	return st
}

func (v *volume) status(now time.Time) (VolumeStatus, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	vs := VolumeStatus{
		Volume: v.name, Path: v.cfg.Path, State: v.state,
		Offline:      strings.HasPrefix(v.state, stateOffline),
		DestagedFile: v.cursor.File, DestagedSeq: v.cursor.Record, LastMarker: v.cursor.Marker,
		NewestWrite: v.cursor.Time, CompleteUntil: v.cursor.watermark(),
		LastMarkerTime: v.cursor.MarkerTime, LastSnapshot: v.cursor.Snapshot, LastSnapshotTime: v.cursor.SnapshotTime,
		BufferBytes:  v.q.Bytes() + v.partBytes,
		FilesWaiting: v.q.Len(), NextFile: v.q.Next(), Gaps: v.q.Gaps(8),
		Receiving: len(v.receiving), LogicalBytes: v.logical, RefusedFull: v.refusedFull,
		Stream: v.cursor.Stream, Previous: v.cursor.Previous, Refused: v.refusalList(),
		Quarantined: append([]QuarantinedFile(nil), v.quarantined...),
		Promoted:    v.promoted,
	}
	for _, q := range vs.Quarantined {
		vs.BufferBytes += q.Size
	}
	var last time.Time
	for _, r := range vs.Refused {
		if r.Last.After(last) {
			last, vs.LastError = r.Last, r.Error
		}
	}
	for _, q := range vs.Quarantined {
		if q.Time.After(last) && q.Error != "" {
			last, vs.LastError = q.Time, "file "+strconv.FormatUint(q.File, 10)+" quarantined ("+q.Reason+"): "+q.Error
		}
	}
	vs.TimeLatency = latency(now, vs.CompleteUntil)
	return vs, v.lastFull
}
