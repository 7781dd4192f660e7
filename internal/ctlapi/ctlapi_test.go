package ctlapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenFile(t *testing.T) {
	path := TokenPath(t.TempDir())
	tok, err := WriteToken(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	if len(tok) != 2*tokenBytes {
		t.Errorf("token %q: want %d hex digits", tok, 2*tokenBytes)
	}
	got, err := ReadToken(path)
	if err != nil || got != tok {
		t.Fatalf("ReadToken = %q, %v; want %q", got, err, tok)
	}
	again, err := WriteToken(path)
	if err != nil || again == tok {
		t.Fatalf("a restart must write a new token: %q, %v", again, err)
	}
	if _, err := ReadToken(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing token file was read")
	}
}

// TestGuard: each check refuses on its own with its status, and a request
// like the CLI's passes. The browser cases are what a page would send:
// a form POST (text/plain, no token) and a fetch with the token stolen.
func TestGuard(t *testing.T) {
	const tok = "0123456789abcdef"
	var served int
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }), tok,
		slog.New(slog.DiscardHandler))
	cli := func(method, body string) *http.Request {
		r := httptest.NewRequest(method, "http://127.0.0.1:7701/v1/marker", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		Authorize(r, tok)
		return r
	}
	tests := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"the CLI's POST", func() *http.Request { return cli("POST", "{}") }, http.StatusOK},
		{"the CLI's GET", func() *http.Request { return cli("GET", "") }, http.StatusOK},
		{"localhost Host", func() *http.Request { r := cli("GET", ""); r.Host = "localhost:7701"; return r }, http.StatusOK},
		{"IPv6 loopback Host", func() *http.Request { r := cli("GET", ""); r.Host = "[::1]:7701"; return r }, http.StatusOK},
		{"same origin", func() *http.Request {
			r := cli("POST", "{}")
			r.Header.Set("Origin", "http://127.0.0.1:7701")
			return r
		}, http.StatusOK},
		{"no token", func() *http.Request { r := cli("POST", "{}"); r.Header.Del("Authorization"); return r }, http.StatusUnauthorized},
		{"wrong token", func() *http.Request { r := cli("POST", "{}"); Authorize(r, "nope"); return r }, http.StatusUnauthorized},
		{"GET without token", func() *http.Request { r := cli("GET", ""); r.Header.Del("Authorization"); return r }, http.StatusUnauthorized},
		{"text/plain POST", func() *http.Request {
			r := cli("POST", "{}")
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, http.StatusUnsupportedMediaType},
		{"POST without content type", func() *http.Request { r := cli("POST", "{}"); r.Header.Del("Content-Type"); return r }, http.StatusUnsupportedMediaType},
		{"DNS-rebound Host", func() *http.Request { r := cli("POST", "{}"); r.Host = "evil.example:7701"; return r }, http.StatusForbidden},
		{"Host of another address", func() *http.Request { r := cli("POST", "{}"); r.Host = "10.1.2.3:7701"; return r }, http.StatusForbidden},
		{"browser form POST from another site", func() *http.Request {
			r := httptest.NewRequest("POST", "http://127.0.0.1:7701/v1/marker", strings.NewReader(`{"volume":"v"}`))
			r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
			r.Header.Set("Origin", "https://evil.example")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			return r
		}, http.StatusForbidden},
		{"cross-origin fetch with the token", func() *http.Request {
			r := cli("POST", "{}")
			r.Header.Set("Origin", "https://evil.example")
			return r
		}, http.StatusForbidden},
		{"loopback page on another port", func() *http.Request {
			r := cli("POST", "{}")
			r.Header.Set("Origin", "http://127.0.0.1:8080")
			return r
		}, http.StatusForbidden},
		{"null origin", func() *http.Request { r := cli("POST", "{}"); r.Header.Set("Origin", "null"); return r }, http.StatusForbidden},
		{"same-site fetch", func() *http.Request {
			r := cli("POST", "{}")
			r.Header.Set("Sec-Fetch-Site", "same-site")
			return r
		}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := served
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			if w.Code != tc.want {
				b, _ := io.ReadAll(w.Body)
				t.Fatalf("status %d (%s), want %d", w.Code, b, tc.want)
			}
			if ok := served > before; ok != (tc.want == http.StatusOK) {
				t.Errorf("handler ran: %v, want %v", ok, tc.want == http.StatusOK)
			}
			if tc.want != http.StatusOK && !strings.Contains(w.Body.String(), `"code"`) {
				t.Errorf("refusal body %q has no JSON code", w.Body.String())
			}
		})
	}
}
