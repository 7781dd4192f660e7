package aimsrc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aimwan/aimwan/internal/ctlapi"
)

// ErrConflict is what a conflict reply of the control API wraps (marker on an
// inconsistent volume, initialize already running).
var ErrConflict = errors.New("conflict")

// ControlError is a failed control request as the client sees it.
type ControlError struct {
	Status int    // HTTP status
	Code   string // bad_request, not_found, conflict, internal
	Msg    string
}

func (e *ControlError) Error() string { return e.Msg }

// Unwrap maps the code to a sentinel: ErrBadRequest, ErrNoSuchVolume
// (not found), ErrConflict, or nil.
func (e *ControlError) Unwrap() error {
	switch e.Code {
	case "bad_request":
		return ErrBadRequest
	case "not_found":
		return ErrNoSuchVolume
	case "conflict":
		return ErrConflict
	case ctlapi.CodeUnauthorized, ctlapi.CodeForbidden:
		return ErrUnauthorized
	}
	return nil
}

// ErrUnauthorized is what a refusal of the control API's guard wraps: no
// token or a wrong one, or a request from a browser page.
var ErrUnauthorized = errors.New("control API refused the request")

// Client talks to a source node's control API.
type Client struct {
	// Addr is the control address (host:port).
	Addr string
	// TokenFile is the node's token file (<buffer>/control.token), read at
	// every request: the node writes a new token at every start.
	TokenFile string
	// HTTP is the client to use (nil: http.DefaultClient).
	HTTP *http.Client
}

// Init starts an initialize of volume (see InitRequest).
func (c *Client) Init(ctx context.Context, volume string, opts ...InitOption) (InitStatus, error) {
	req := InitRequest{Volume: volume}
	for _, o := range opts {
		o(&req)
	}
	var st InitStatus
	err := c.do(ctx, http.MethodPost, PathInit, req, &st)
	return st, err
}

// Marker places a marker.
func (c *Client) Marker(ctx context.Context, req MarkerRequest) (MarkerResult, error) {
	var res MarkerResult
	err := c.do(ctx, http.MethodPost, PathMarker, req, &res)
	return res, err
}

// Drain drains a volume (undo: takes writes again) and returns its drain
// state; call it again to follow the drain until Complete.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (DrainStatus, error) {
	var st DrainStatus
	err := c.do(ctx, http.MethodPost, PathDrain, req, &st)
	return st, err
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, PathStatus, nil, &st)
	return st, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if c.TokenFile == "" {
		return fmt.Errorf("control %s: no token file: give the node's --buffer, its --config or --token FILE", path)
	}
	token, err := ctlapi.ReadToken(c.TokenFile)
	if err != nil {
		return fmt.Errorf("control %s: %w", path, err)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("control %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, body)
	if err != nil {
		return fmt.Errorf("control %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	ctlapi.Authorize(req, token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("source node control API at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("control %s: read reply: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		return &ControlError{Status: resp.StatusCode, Code: eb.Code, Msg: eb.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control %s: decode reply: %w", path, err)
	}
	return nil
}

// InitOption modifies an InitRequest.
type InitOption func(*InitRequest)

// InitDelta asks for an initialize by checksum comparison.
func InitDelta() InitOption { return func(r *InitRequest) { r.Delta = true } }
