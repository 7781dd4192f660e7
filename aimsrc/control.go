package aimsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/netaddr"
)

// Control API paths (HTTP + JSON, loopback).
const (
	PathInit   = "/v1/init"   // POST InitRequest -> InitStatus
	PathMarker = "/v1/marker" // POST MarkerRequest -> MarkerResult
	PathStatus = "/v1/status" // GET -> Status
)

// maxControlBody bounds a control request body.
const maxControlBody = 1 << 20

// InitRequest asks for an initialize of one volume.
type InitRequest struct {
	Volume string `json:"volume"`
	// Delta compares block checksums with the destination and journals
	// only the blocks that differ (an initialize by checksum comparison).
	Delta bool `json:"delta,omitempty"`
}

// errorBody is the JSON of a failed control request.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"` // bad_request, not_found, conflict, internal
}

// Init starts an initialize of the named volume: a full one, or with delta
// one by checksum comparison with the next hop.
func (n *Node) Init(volume string, delta bool) (InitStatus, error) {
	v, ok := n.vols[volume]
	if !ok {
		return InitStatus{}, fmt.Errorf("%w: %q", ErrNoSuchVolume, volume)
	}
	return v.requestInit(delta)
}

func (n *Node) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathInit, func(w http.ResponseWriter, r *http.Request) {
		var req InitRequest
		if !readJSON(w, r, &req) {
			return
		}
		st, err := n.Init(req.Volume, req.Delta)
		reply(w, http.StatusAccepted, st, err)
	})
	mux.HandleFunc("POST "+PathMarker, func(w http.ResponseWriter, r *http.Request) {
		var req MarkerRequest
		if !readJSON(w, r, &req) {
			return
		}
		res, err := n.Marker(req)
		reply(w, http.StatusOK, res, err)
	})
	n.pauseHandlers(mux)
	mux.HandleFunc("POST "+PathDrain, func(w http.ResponseWriter, r *http.Request) {
		var req DrainRequest
		if !readJSON(w, r, &req) {
			return
		}
		st, err := n.Drain(req)
		reply(w, http.StatusOK, st, err)
	})
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, n.Status(), nil)
	})
	return mux
}

func readJSON(w http.ResponseWriter, r *http.Request, into any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		reply(w, 0, nil, fmt.Errorf("%w: request body: %w", ErrBadRequest, err))
		return false
	}
	return true
}

// reply writes v with status ok, or err mapped to an HTTP status and code.
func reply(w http.ResponseWriter, ok int, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status, code := http.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, ErrBadRequest):
			status, code = http.StatusBadRequest, "bad_request"
		case errors.Is(err, ErrNoSuchVolume), errors.Is(err, ErrNoSuchGroup):
			status, code = http.StatusNotFound, "not_found"
		case errors.Is(err, ErrNotConsistent), errors.Is(err, ErrInitRunning):
			status, code = http.StatusConflict, "conflict"
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(errorBody{Error: err.Error(), Code: code})
		return
	}
	w.WriteHeader(ok)
	json.NewEncoder(w).Encode(v)
}

// serveControl serves the control API on ln until ctx ends, behind the
// guard of internal/ctlapi (loopback Host, same origin, the token written at
// start, JSON bodies).
func (n *Node) serveControl(ctx context.Context, ln net.Listener) error {
	if !netaddr.IsLoopback(ln.Addr().String()) {
		n.log.Warn("control API is not on a loopback address: anyone who reaches it and holds the token can place markers", "addr", ln.Addr().String())
	}
	return metrics.ServeHTTP(ctx, ln, ctlapi.Guard(n.controlHandler(), n.token, n.log), "control API on", n.log)
}
