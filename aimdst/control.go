package aimdst

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/metrics"
)

// StatusPath is the control endpoint's status resource (JSON Status).
const StatusPath = "/status"

// serveControl serves the control endpoint (GET /status, the snapshot
// resources of snapshotRoutes) on ln until ctx ends, behind the guard of
// internal/ctlapi (loopback Host, same origin, the token).
func serveControl(ctx context.Context, ln net.Listener, n *Node, token string, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(n.Status()); err != nil {
			log.Debug("control: write status", "err", err)
		}
	})
	n.snapshotRoutes(mux)
	promoteHandlers(mux, n)
	return metrics.ServeHTTP(ctx, ln, ctlapi.Guard(mux, token, log), "control endpoint", log)
}

// FetchStatus asks the control endpoint at addr (host:port) for the node's
// status, with the token in tokenFile (the node's <buffer>/control.token).
func FetchStatus(ctx context.Context, addr, tokenFile string) (Status, error) {
	token, err := ctlapi.ReadToken(tokenFile)
	if err != nil {
		return Status{}, fmt.Errorf("dst status %s: %w", addr, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+StatusPath, nil)
	if err != nil {
		return Status{}, fmt.Errorf("dst status %s: %w", addr, err)
	}
	ctlapi.Authorize(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("dst status %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return Status{}, fmt.Errorf("dst status %s: %s: %s", addr, resp.Status, b)
	}
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("dst status %s: decode: %w", addr, err)
	}
	return st, nil
}
