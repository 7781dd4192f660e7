package aimsrc

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlGuard: the node's control API refuses what a web page or
// another user could send (no token, another origin, a form body, a
// rebound host name), places no marker for any of them, and serves the
// client that read the token file. The token file is the owner's only.
func TestControlGuard(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	n, _ := runNode(t, cfg)
	st, err := os.Stat(n.TokenPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	addr := n.ControlAddr().String()
	token, err := os.ReadFile(n.TokenPath())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"volume":"v1","kind":"snapshot","label":"evil"}`
	post := func(mod func(r *http.Request)) int {
		t.Helper()
		r, err := http.NewRequest(http.MethodPost, "http://"+addr+PathMarker, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		mod(r)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name string
		mod  func(r *http.Request)
		want int
	}{
		{"browser form from another site", func(r *http.Request) {
			r.Header.Del("Authorization")
			r.Header.Set("Content-Type", "text/plain")
			r.Header.Set("Origin", "https://evil.example")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}, http.StatusForbidden},
		{"no token", func(r *http.Request) { r.Header.Del("Authorization") }, http.StatusUnauthorized},
		{"other origin with the token", func(r *http.Request) { r.Header.Set("Origin", "http://localhost:8080") }, http.StatusForbidden},
		{"rebound host name", func(r *http.Request) { r.Host = "evil.example" }, http.StatusForbidden},
		{"text body with the token", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, http.StatusUnsupportedMediaType},
	} {
		if got := post(tc.mod); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	cl := &Client{Addr: addr, TokenFile: n.TokenPath()}
	res, err := cl.Marker(context.Background(), MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "ok"})
	if err != nil {
		t.Fatalf("client with the token: %v", err)
	}
	if res.Seqs["v1"] != 1 {
		t.Errorf("the genuine marker took seq %d, want 1: a refused request placed records", res.Seqs["v1"])
	}
	wrong := filepath.Join(dir, "wrong.token")
	os.WriteFile(wrong, []byte("0000"), 0o600)
	if _, err := (&Client{Addr: addr, TokenFile: wrong}).Status(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("client with a wrong token: %v, want ErrUnauthorized", err)
	}
}
