package aimsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/aimwan/aimwan/internal/durable"
)

// Control API paths of pause and resume.
const (
	PathPause  = "/v1/pause"  // POST PauseRequest -> PauseState
	PathResume = "/v1/resume" // POST PauseRequest -> PauseState
)

// PausedFile is the file in the source buffer that keeps the pauses across
// restarts.
const PausedFile = "paused.json"

// Who paused a volume (VolumeStatus.PausedBy).
const (
	PausedByVolume      = "volume"      // aimwan src pause --volume V
	PausedByDestination = "destination" // aimwan src pause: every volume
)

// ErrPausedByDestination is returned for resuming one volume while the
// whole destination is paused.
var ErrPausedByDestination = errors.New("the whole destination is paused")

// PauseRequest pauses or resumes one volume, or the whole destination
// (Volume empty).
type PauseRequest struct {
	Volume string `json:"volume,omitempty"`
}

// PauseState is what is paused: the whole destination, and volumes one by
// one. It is also the JSON of PausedFile.
type PauseState struct {
	All     bool     `json:"all"`
	Volumes []string `json:"volumes"` // sorted
}

// pauses holds the pause state of a node: what it persists and who waits
// for a change.
type pauses struct {
	path string

	mu      sync.Mutex
	st      PauseState
	changed chan struct{} // closed (and replaced) at every change
}

// loadPauses reads the pause state from buffer (none when the file is
// absent).
func loadPauses(buffer string) (*pauses, error) {
	p := &pauses{path: filepath.Join(buffer, PausedFile), changed: make(chan struct{}), st: PauseState{Volumes: []string{}}}
	b, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return p, nil
	case err != nil:
		return nil, fmt.Errorf("read pause state: %w", err)
	}
	if err := json.Unmarshal(b, &p.st); err != nil {
		return nil, fmt.Errorf("pause state %s is damaged (%w): fix or delete it (deleting resumes every volume)", p.path, err)
	}
	if p.st.Volumes == nil {
		p.st.Volumes = []string{}
	}
	slices.Sort(p.st.Volumes)
	return p, nil
}

// of says whether volume is paused and by whom ("" when it is not), and
// returns a channel closed at the next change.
func (p *pauses) of(volume string) (by string, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.st.All:
		by = PausedByDestination
	case slices.Contains(p.st.Volumes, volume):
		by = PausedByVolume
	}
	return by, p.changed
}

// state returns a copy of the pause state.
func (p *pauses) state() PauseState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PauseState{All: p.st.All, Volumes: slices.Clone(p.st.Volumes)}
}

// set pauses (or resumes) volume, or every volume when it is empty, and
// makes the new state durable before anyone is told. Resuming the whole
// destination resumes every volume.
func (p *pauses) set(volume string, pause bool) (PauseState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := PauseState{All: p.st.All, Volumes: slices.Clone(p.st.Volumes)}
	switch {
	case volume == "" && pause:
		next.All = true
	case volume == "":
		next = PauseState{Volumes: []string{}}
	case pause:
		if !slices.Contains(next.Volumes, volume) {
			next.Volumes = append(next.Volumes, volume)
			slices.Sort(next.Volumes)
		}
	default:
		if next.All {
			return p.st, fmt.Errorf("%w: resume volume %s: %w; resume it with aimwan src resume (no --volume), which resumes every volume",
				ErrBadRequest, volume, ErrPausedByDestination)
		}
		next.Volumes = slices.DeleteFunc(next.Volumes, func(v string) bool { return v == volume })
	}
	b, err := json.Marshal(next)
	if err != nil {
		return p.st, err
	}
	if err := durable.WriteFile(p.path, append(b, '\n'), 0o600); err != nil {
		return p.st, fmt.Errorf("store pause state: %w", err)
	}
	p.st = next
	close(p.changed)
	p.changed = make(chan struct{})
	return PauseState{All: next.All, Volumes: slices.Clone(next.Volumes)}, nil
}

// Pause stops pushing volume (every volume when it is empty): pushes in
// flight are canceled and the files stay; writes are still journaled. The
// pause is stored in the source buffer and holds across restarts.
func (n *Node) Pause(volume string) (PauseState, error) { return n.setPause(volume, true) }

// Resume undoes Pause. Resuming the whole destination (volume empty)
// resumes every volume, also those paused one by one.
func (n *Node) Resume(volume string) (PauseState, error) { return n.setPause(volume, false) }

func (n *Node) setPause(volume string, pause bool) (PauseState, error) {
	if _, ok := n.vols[volume]; volume != "" && !ok {
		return n.pauses.state(), fmt.Errorf("%w: %q", ErrNoSuchVolume, volume)
	}
	st, err := n.pauses.set(volume, pause)
	if err == nil {
		verb := "resumed"
		if pause {
			verb = "paused"
		}
		what := volume
		if what == "" {
			what = "every volume (the destination)"
		}
		n.log.Warn("pushing "+verb, "volume", what)
	}
	return st, err
}

// pauseHandlers adds the pause and resume endpoints to mux.
func (n *Node) pauseHandlers(mux *http.ServeMux) {
	for path, pause := range map[string]bool{PathPause: true, PathResume: false} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req PauseRequest
			if !readJSON(w, r, &req) {
				return
			}
			st, err := n.setPause(req.Volume, pause)
			reply(w, http.StatusOK, st, err)
		})
	}
}

// Pause pauses volume (every volume when it is empty).
func (c *Client) Pause(ctx context.Context, volume string) (PauseState, error) {
	var st PauseState
	err := c.do(ctx, http.MethodPost, PathPause, PauseRequest{Volume: volume}, &st)
	return st, err
}

// Resume resumes volume (every volume when it is empty).
func (c *Client) Resume(ctx context.Context, volume string) (PauseState, error) {
	var st PauseState
	err := c.do(ctx, http.MethodPost, PathResume, PauseRequest{Volume: volume}, &st)
	return st, err
}

// StatusInto decodes the node's status into out: a caller's own struct, so
// it can read fields a node of another version may lack (or add).
func (c *Client) StatusInto(ctx context.Context, out any) error {
	return c.do(ctx, http.MethodGet, PathStatus, nil, out)
}
