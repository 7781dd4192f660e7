// Package ctlapi guards the daemons' control APIs (src's /v1/..., dst's
// /status), which listen on loopback: a loopback address keeps other hosts
// out but not a web page the operator's browser runs, nor another user of
// the host. So every request must pass, in this order:
//
//   - Host: "localhost" or a loopback IP (or the listener's own IP), never a
//     DNS name: a page that rebinds its own name to 127.0.0.1 sends its
//     name (DNS rebinding).
//   - Origin and Sec-Fetch-Site: a browser names the page that sends a
//     request; one from another origin (a loopback page on another port
//     included), or marked cross-site or same-site, is refused (cross-site
//     request forgery). The command line sends neither.
//   - token: "Authorization: Bearer TOKEN", where TOKEN is the content of
//     the token file the daemon writes at every start in its state folder
//     (TokenFile, mode 0600): only a user who can read that file may use
//     the API (as Syncthing requires its API key on localhost too).
//   - content type: a POST carries application/json (a browser form or a
//     "simple" cross-origin request cannot).
//
// Refusals answer 403, 401 or 415 with a JSON body {"error", "code"}.
package ctlapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aimwan/aimwan/internal/durable"
)

// TokenFile is the token file's name in a daemon's state folder (its
// --buffer).
const TokenFile = "control.token"

// tokenBytes is the token's entropy.
const tokenBytes = 32

// Error codes of refusals, in the JSON body.
const (
	CodeForbidden    = "forbidden"    // Host, Origin or Sec-Fetch-Site refused
	CodeUnauthorized = "unauthorized" // no token or a wrong one
	CodeMediaType    = "unsupported_media_type"
)

// ErrNoToken is wrapped when a token file is missing or empty.
var ErrNoToken = errors.New("no control API token")

// TokenPath is the token file of a daemon whose state folder is dir.
func TokenPath(dir string) string { return filepath.Join(dir, TokenFile) }

// WriteToken writes a new random token to path (mode 0600, durably,
// replacing any earlier one) and returns it.
func WriteToken(path string) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("control API token: %w", err)
	}
	tok := hex.EncodeToString(b)
	if err := durable.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("control API token: %w", err)
	}
	return tok, nil
}

// ReadToken reads the token in path.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the control API token (written by the daemon at start): %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: %w", path, ErrNoToken)
	}
	return tok, nil
}

// Authorize puts token on req.
func Authorize(req *http.Request, token string) {
	req.Header.Set("Authorization", "Bearer "+token)
}

// Guard wraps h with the checks of the package comment; token is the one
// the daemon wrote. Refusals are logged at warn level.
func Guard(h http.Handler, token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, code, why := check(r, want)
		if status == 0 {
			h.ServeHTTP(w, r)
			return
		}
		log.Warn("control API: request refused", "why", why, "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "host", r.Host, "origin", r.Header.Get("Origin"))
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aimwan control API"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}{why, code})
	})
}

// check returns 0 for a request that passes, else the HTTP status, code
// and reason of the refusal.
func check(r *http.Request, token []byte) (int, string, string) {
	if !loopbackHost(r) {
		return http.StatusForbidden, CodeForbidden, fmt.Sprintf("Host %q is not a loopback address (use 127.0.0.1 or localhost)", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		return http.StatusForbidden, CodeForbidden, fmt.Sprintf("cross-origin request from %q refused", o)
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return http.StatusForbidden, CodeForbidden, fmt.Sprintf("%s request refused (Sec-Fetch-Site)", s)
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), token) != 1 {
		return http.StatusUnauthorized, CodeUnauthorized,
			"missing or wrong token: send the content of the node's " + TokenFile + " (in its --buffer folder) as Authorization: Bearer TOKEN"
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, CodeMediaType,
				fmt.Sprintf("Content-Type %q: want application/json", r.Header.Get("Content-Type"))
		}
	}
	return 0, "", ""
}

// loopbackHost reports whether the request's Host names this host by
// loopback: localhost, a loopback IP, or the IP the connection came in on
// (an operator who bound the API elsewhere reaches it by that IP).
func loopbackHost(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok && ta.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether a browser's Origin is the API itself (the
// only page that may call it; it serves none). Any other page, a loopback
// one on another port included, is another origin.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" {
		return false // "null" (sandboxed, file:) included
	}
	return strings.EqualFold(u.Host, host)
}
