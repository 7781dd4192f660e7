package nbd

import (
	"errors"
	"strings"
	"testing"
)

// TestParseURI: the examples of doc/uri.md of the NBD project, and the URIs
// this client refuses with the reason.
func TestParseURI(t *testing.T) {
	ok := []struct {
		uri  string
		want Target
	}{
		{"nbd://example.com/disk", Target{"tcp", "example.com:10809", "disk"}},
		{"nbd://example.com:10810/disk", Target{"tcp", "example.com:10810", "disk"}},
		{"nbd://example.com/", Target{"tcp", "example.com:10809", ""}},
		{"nbd://example.com", Target{"tcp", "example.com:10809", ""}},
		{"nbd://example.com//disk", Target{"tcp", "example.com:10809", "/disk"}},
		{"nbd://example.com/hello%20world", Target{"tcp", "example.com:10809", "hello world"}},
		{"nbd://[::1]:10811/v", Target{"tcp", "[::1]:10811", "v"}},
		{"NBD://127.0.0.1:7/v", Target{"tcp", "127.0.0.1:7", "v"}},
		{"nbd+unix:///disk?socket=sock", Target{"unix", "sock", "disk"}},
		{"nbd+unix:///disk?socket=/run/qemu%20nbd.sock", Target{"unix", "/run/qemu nbd.sock", "disk"}},
		{"nbd+unix:///?socket=%00/abstract", Target{"unix", "\x00/abstract", ""}},
	}
	for _, tc := range ok {
		got, err := ParseURI(tc.uri)
		if err != nil || got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", tc.uri, got, err, tc.want)
			continue
		}
		if back, err := ParseURI(got.String()); err != nil || back != got {
			t.Errorf("%q: String() %q parses to %+v, %v", tc.uri, got.String(), back, err)
		}
		if !IsURI(tc.uri) {
			t.Errorf("IsURI(%q) = false", tc.uri)
		}
	}
	bad := []struct{ uri, says string }{
		{"nbds://example.com/disk", "TLS (nbds) is not supported"},
		{"nbds+unix:///disk?socket=s", "TLS"},
		{"nbd+vsock://1:10809/e", "vsock"},
		{"nbd://user@example.com/disk", "user info"},
		{"nbd://example.com/disk?tls-type=x509", "TLS is not supported"},
		{"nbd://example.com/disk?x-foo=1", `unknown query parameter "x-foo"`},
		{"nbd:///disk", "no host"},
		{"nbd://example.com:/disk", "empty port"},
		{"nbd://example.com:99999999/disk", "not a number from 1 to 65535"},
		{"nbd://example.com:0/disk", "not a number from 1 to 65535"},
		{"nbd://::1/disk", "in brackets"},
		{"nbd+unix:///disk", "socket=PATH"},
		{"nbd+unix:///disk?socket=a&socket=b", "exactly one"},
		{"nbd+unix://host/disk?socket=s", "no host"},
		{"nbd://h/d%00x", "NUL"},
		{"nbd://h/" + strings.Repeat("a", 4097), "longer than 4096"},
		{"http://example.com/disk", `scheme "http"`},
		{"nbd:disk", "want SCHEME://"},
		{"nbd://h/d#frag", "fragment"},
	}
	for _, tc := range bad {
		_, err := ParseURI(tc.uri)
		if !errors.Is(err, ErrURI) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseURI(%q) = %v; want ErrURI saying %q", tc.uri, err, tc.says)
		}
	}
	for _, p := range []string{"/dev/sdb", "/srv/dr/db.img", "db.img", "nbd.img", "./nbd:/x"} {
		if IsURI(p) {
			t.Errorf("IsURI(%q) = true for a path", p)
		}
	}
}
