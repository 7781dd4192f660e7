package aimdst

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/journal"
)

// Control endpoint resources of failover (POST, JSON).
const (
	PromotePath = "/promote" // PromoteRequest -> []Promotion
	DemotePath  = "/demote"  // DemoteRequest -> {}
)

// DemoteRequest asks to make a promoted volume a replica again.
type DemoteRequest struct {
	Volume string `json:"volume"`
}

// apiError is the JSON body of a failed request.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"` // bad_request, not_found, conflict, internal
}

// promoteHandlers adds the failover resources to mux.
func promoteHandlers(mux *http.ServeMux, n *Node) {
	mux.HandleFunc("POST "+PromotePath, func(w http.ResponseWriter, r *http.Request) {
		var req PromoteRequest
		if !decodeRequest(w, r, &req) {
			return
		}
		if req.Group != "" {
			if err := journal.ValidName(req.Group); err != nil {
				replyPromote(w, nil, fmt.Errorf("%w: group: %w", ErrBadRequest, err))
				return
			}
		}
		out, err := n.Promote(r.Context(), req)
		replyPromote(w, out, err)
	})
	mux.HandleFunc("POST "+DemotePath, func(w http.ResponseWriter, r *http.Request) {
		var req DemoteRequest
		if !decodeRequest(w, r, &req) {
			return
		}
		replyPromote(w, struct{}{}, n.Demote(req.Volume))
	})
}

func decodeRequest(w http.ResponseWriter, r *http.Request, into any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		replyPromote(w, nil, fmt.Errorf("%w: request body: %w", ErrBadRequest, err))
		return false
	}
	return true
}

// replyPromote writes v, or err mapped to an HTTP status and a code.
func replyPromote(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status, code := http.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, ErrBadRequest):
			status, code = http.StatusBadRequest, "bad_request"
		case errors.Is(err, ErrNoSuchVolume):
			status, code = http.StatusNotFound, "not_found"
		case errors.Is(err, ErrNoPoint), errors.Is(err, ErrNotPromoted), errors.Is(err, ErrPromoted):
			status, code = http.StatusConflict, "conflict"
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(apiError{Error: err.Error(), Code: code})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// RequestPromote asks the control endpoint at addr (token in tokenFile)
// to promote; it waits up to the context's deadline.
func RequestPromote(ctx context.Context, addr, tokenFile string, req PromoteRequest) ([]Promotion, error) {
	var out []Promotion
	err := post(ctx, addr, tokenFile, PromotePath, req, &out)
	return out, err
}

// RequestDemote asks the control endpoint at addr to demote volume.
func RequestDemote(ctx context.Context, addr, tokenFile, volume string) error {
	return post(ctx, addr, tokenFile, DemotePath, DemoteRequest{Volume: volume}, &struct{}{})
}

// post sends in as JSON to the control endpoint and decodes the answer.
func post(ctx context.Context, addr, tokenFile, path string, in, out any) error {
	token, err := ctlapi.ReadToken(tokenFile)
	if err != nil {
		return fmt.Errorf("dst %s %s: %w", path, addr, err)
	}
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("dst %s %s: %w", path, addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	ctlapi.Authorize(req, token)
	hc := &http.Client{Timeout: promoteWait + time.Minute}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("dst %s %s: %w", path, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e apiError
		json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		var sentinel error
		switch e.Code {
		case "bad_request":
			sentinel = ErrBadRequest
		case "not_found":
			sentinel = ErrNoSuchVolume
		case "conflict":
			sentinel = ErrNoPoint
		default:
			sentinel = errors.New(resp.Status)
		}
		return fmt.Errorf("dst %s: %w: %s", path, sentinel, e.Error)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("dst %s %s: decode: %w", path, addr, err)
	}
	return nil
}
