package aimdst

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// Control endpoint resources of the snapshot lifecycle.
const (
	SnapshotsPath      = "/snapshots"        // GET [?volume=V] -> SnapshotList
	SnapshotDeletePath = "/snapshots/delete" // POST DeleteRequest -> DeleteResult
)

// maxSnapshotRequest bounds a delete request body.
const maxSnapshotRequest = 64 << 10

// DeleteRequest names the snapshot to delete: Volume and Label, or, for a
// group point, Group and Label (every member's snapshot goes).
type DeleteRequest struct {
	Volume string `json:"volume,omitempty"`
	Group  string `json:"group,omitempty"`
	Label  string `json:"label"`
}

// DeleteResult lists the snapshots deleted, as VOLUME/LABEL.
type DeleteResult struct {
	Deleted []string `json:"deleted"`
}

// openSnapshots sets up the snapshot store and retention, and removes what
// an interrupted snapshot or delete left behind.
func (n *Node) openSnapshots() error {
	n.snaps = newSnapshots(n.cfg)
	removed, err := n.snaps.store.cleanup()
	if err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	if len(removed) > 0 {
		n.log.Info("removed what interrupted snapshots or deletes left", "files", removed)
	}
	if err := durable.MkdirAll(n.cfg.SnapshotDir, 0o755); err != nil {
		n.log.Warn("snapshot folder cannot be made yet; snapshots will stall until it can", "dir", n.cfg.SnapshotDir, "err", err)
	}
	for _, v := range n.cfg.Volumes {
		n.snaps.pruned.WithLabelValues(v.Name)
		switch method, why := expectedMethod(v.Path, n.cfg.SnapshotDir); method {
		case methodReflink:
			n.log.Info("snapshots will be reflinks", "volume", v.Name, "why", why)
		case methodSparse:
			n.log.Info("snapshots will be full sparse copies: each takes the volume's data in space, and destage waits for the copy",
				"volume", v.Name, "why", why, "see", "docs/destination-node.md#what-a-snapshot-costs")
		}
	}
	for _, p := range n.cfg.Retention {
		n.log.Info("snapshot retention", "policy", p.String())
	}
	return nil
}

// Snapshots lists the snapshots held (of one volume when volume is set),
// each with the retention classes that keep it.
func (n *Node) Snapshots(volume string) (SnapshotList, error) {
	if volume != "" {
		if err := journal.ValidName(volume); err != nil {
			return SnapshotList{}, fmt.Errorf("%w: volume: %w", ErrBadSnapshotRequest, err)
		}
	}
	l, _, _, err := n.snaps.inventory()
	if err != nil {
		return l, err
	}
	l.Node = n.cfg.Node
	if volume != "" {
		var keep []SnapshotInfo
		for _, si := range l.Snapshots {
			if si.Volume == volume {
				keep = append(keep, si)
			}
		}
		l.Snapshots = append([]SnapshotInfo{}, keep...)
	}
	return l, nil
}

// DeleteSnapshot deletes a snapshot, or every member snapshot of a group
// point. It refuses a snapshot in use (ErrSnapshotInUse: nothing of a group
// point is deleted then) and a group member named alone (ErrGroupPoint).
// Deleting is crash-safe (see snapshotStore.remove) and serialized with
// destage taking snapshots of the same volume.
func (n *Node) DeleteSnapshot(req DeleteRequest) (DeleteResult, error) {
	if err := validLabel(req.Label); err != nil {
		return DeleteResult{}, err
	}
	if (req.Volume == "") == (req.Group == "") {
		return DeleteResult{}, fmt.Errorf("%w: give a volume or a group (and a label)", ErrBadSnapshotRequest)
	}
	if req.Volume != "" {
		if err := journal.ValidName(req.Volume); err != nil {
			return DeleteResult{}, fmt.Errorf("%w: volume: %w", ErrBadSnapshotRequest, err)
		}
		si, err := n.snaps.store.stat(req.Volume, req.Label)
		if err != nil {
			return DeleteResult{}, fmt.Errorf("%w: %s/%s", ErrNoSuchSnapshot, req.Volume, req.Label)
		}
		if si.Group != "" {
			return DeleteResult{}, fmt.Errorf("%w: %s/%s was taken at group %s's marker #%d; delete the whole point with --group %s --label %s",
				ErrGroupPoint, req.Volume, req.Label, si.Group, si.GroupSeq, si.Group, req.Label)
		}
		if err := n.snaps.store.remove(req.Volume, req.Label, nil); err != nil {
			return DeleteResult{}, err
		}
		n.log.Info("snapshot deleted", "volume", req.Volume, "label", req.Label)
		return DeleteResult{Deleted: []string{req.Volume + "/" + req.Label}}, nil
	}
	return n.deleteGroupPoint(req.Group, req.Label)
}

// deleteGroupPoint deletes the member snapshots of group's point label.
func (n *Node) deleteGroupPoint(group, label string) (DeleteResult, error) {
	if err := journal.ValidName(group); err != nil {
		return DeleteResult{}, fmt.Errorf("%w: group: %w", ErrBadSnapshotRequest, err)
	}
	l, _, _, err := n.snaps.inventory()
	if err != nil {
		return DeleteResult{}, err
	}
	var members []SnapshotInfo
	for _, si := range l.Snapshots {
		if si.Group == group && si.Label == label {
			members = append(members, si)
		}
	}
	if len(members) == 0 {
		return DeleteResult{}, fmt.Errorf("%w: no snapshot %s of group %s", ErrNoSuchSnapshot, label, group)
	}
	for _, si := range members {
		if si.InUse {
			return DeleteResult{}, fmt.Errorf("%w: %s/%s (group %s) is exported over NBD or used by a test clone; nothing deleted",
				ErrSnapshotInUse, si.Volume, si.Label, group)
		}
	}
	var res DeleteResult
	for _, si := range members {
		if err := n.snaps.store.remove(si.Volume, si.Label, nil); err != nil && !errors.Is(err, ErrNoSuchSnapshot) {
			return res, fmt.Errorf("group %s point %s: deleted %v, then: %w", group, label, res.Deleted, err)
		}
		res.Deleted = append(res.Deleted, si.Volume+"/"+si.Label)
	}
	n.log.Info("group point deleted", "group", group, "label", label, "snapshots", res.Deleted)
	return res, nil
}

// snapshotRoutes adds the snapshot resources to the control endpoint.
func (n *Node) snapshotRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+SnapshotsPath, func(w http.ResponseWriter, r *http.Request) {
		l, err := n.Snapshots(r.URL.Query().Get("volume"))
		replyJSON(w, l, err)
	})
	mux.HandleFunc("POST "+SnapshotDeletePath, func(w http.ResponseWriter, r *http.Request) {
		var req DeleteRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxSnapshotRequest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			replyJSON(w, nil, fmt.Errorf("%w: request body: %w", ErrBadSnapshotRequest, err))
			return
		}
		res, err := n.DeleteSnapshot(req)
		replyJSON(w, res, err)
	})
}

// ControlError is a refusal of the control endpoint: its code (bad_request,
// not_found, in_use, group_point, internal) and message. It matches the
// snapshot sentinels with errors.Is.
type ControlError struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *ControlError) Error() string { return e.Message }

// Unwrap returns the sentinel of the code.
func (e *ControlError) Unwrap() error {
	for _, c := range controlCodes {
		if c.code == e.Code {
			return c.err
		}
	}
	return nil
}

var controlCodes = []struct {
	err    error
	code   string
	status int
}{
	{ErrBadSnapshotRequest, "bad_request", http.StatusBadRequest},
	{ErrNoSuchSnapshot, "not_found", http.StatusNotFound},
	{ErrSnapshotInUse, "in_use", http.StatusConflict},
	{ErrGroupPoint, "group_point", http.StatusConflict},
}

// replyJSON writes v, or err as a ControlError with its HTTP status.
func replyJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		ce, status := ControlError{Code: "internal", Message: err.Error()}, http.StatusInternalServerError
		for _, c := range controlCodes {
			if errors.Is(err, c.err) {
				ce.Code, status = c.code, c.status
				break
			}
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(ce)
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// FetchSnapshots asks the control endpoint at addr for the snapshot list
// (of volume, when set), with the token in tokenFile (the node's
// <buffer>/control.token).
func FetchSnapshots(ctx context.Context, addr, tokenFile, volume string) (SnapshotList, error) {
	path := SnapshotsPath
	if volume != "" {
		path += "?" + url.Values{"volume": {volume}}.Encode()
	}
	var l SnapshotList
	err := controlCall(ctx, http.MethodGet, addr, tokenFile, path, nil, &l)
	return l, err
}

// RequestDelete asks the control endpoint at addr to delete a snapshot,
// with the token in tokenFile.
func RequestDelete(ctx context.Context, addr, tokenFile string, req DeleteRequest) (DeleteResult, error) {
	var res DeleteResult
	err := controlCall(ctx, http.MethodPost, addr, tokenFile, SnapshotDeletePath, req, &res)
	return res, err
}

// controlCall does one control request with the token in tokenFile: body
// (nil: none) as JSON, the answer decoded into out; a refusal is a
// *ControlError.
func controlCall(ctx context.Context, method, addr, tokenFile, path string, body, out any) error {
	token, err := ctlapi.ReadToken(tokenFile)
	if err != nil {
		return fmt.Errorf("dst %s: %w", addr, err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return fmt.Errorf("dst %s: %w", addr, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	ctlapi.Authorize(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("dst %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("dst %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ce ControlError
		if json.Unmarshal(b, &ce) == nil && ce.Message != "" {
			return &ce
		}
		return fmt.Errorf("dst %s: %s: %s", addr, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("dst %s: decode %s: %w", addr, path, err)
	}
	return nil
}
