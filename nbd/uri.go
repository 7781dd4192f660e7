package nbd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the IANA-assigned NBD port, used when a URI names none.
const DefaultPort = "10809"

// ErrURI is wrapped by ParseURI's errors.
var ErrURI = errors.New("invalid NBD URI")

// Target is where an NBD export is: a network ("tcp" or "unix"), an address
// (host:port, or a socket path) and the export name.
type Target struct {
	Network string // "tcp" or "unix"
	Address string // host:port for tcp, the socket path for unix
	Export  string // export name (may be empty: the server's default export)
}

// IsURI reports whether s looks like an NBD URI (it starts with an NBD
// scheme), as opposed to a file or device path.
func IsURI(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "nbd", "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock":
		return true
	}
	return false
}

// ParseURI parses an NBD URI as doc/uri.md of the NBD project defines it:
//
//	nbd://HOST[:PORT]/EXPORT            TCP; port 10809 when not given
//	nbd+unix:///EXPORT?socket=PATH      Unix domain socket
//
// The export name is the path without its leading "/", percent-decoded
// ("nbd://h/" and "nbd://h" name the default export ""). TLS schemes (nbds,
// nbds+unix) and vsock are refused with an error saying so, as the spec asks
// of clients without TLS; so are unknown query parameters, user info, and a
// host given for a Unix socket.
func ParseURI(s string) (Target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("%w %q: %w", ErrURI, s, err)
	}
	bad := func(format string, a ...any) (Target, error) {
		return Target{}, fmt.Errorf("%w %q: %s", ErrURI, s, fmt.Sprintf(format, a...))
	}
	if u.Opaque != "" {
		return bad("want SCHEME://[HOST[:PORT]]/EXPORT")
	}
	if u.User != nil {
		return bad("user info is only for TLS authentication, which is not supported")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return bad("a fragment (#...) has no meaning in an NBD URI")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	t := Target{Export: strings.TrimPrefix(u.Path, "/")}
	if strings.ContainsRune(t.Export, 0) || len(t.Export) > maxNameLen {
		return bad("export name has a NUL byte or is longer than %d bytes", maxNameLen)
	}
	switch strings.ToLower(u.Scheme) {
	case "nbd":
		if err := onlyParams(q); err != nil {
			return bad("%v", err)
		}
		if u.Hostname() == "" {
			return bad("no host (nbd://HOST[:PORT]/EXPORT)")
		}
		if strings.Contains(u.Hostname(), ":") && !strings.HasPrefix(u.Host, "[") {
			return bad("an IPv6 address goes in brackets: nbd://[ADDR]:PORT/EXPORT")
		}
		port := u.Port()
		if port == "" {
			if strings.HasSuffix(u.Host, ":") {
				return bad("empty port")
			}
			port = DefaultPort
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port %q is not a number from 1 to 65535", port)
		}
		t.Network, t.Address = "tcp", net.JoinHostPort(u.Hostname(), port)
	case "nbd+unix":
		if err := onlyParams(q, "socket"); err != nil {
			return bad("%v", err)
		}
		if u.Host != "" {
			return bad("a Unix socket URI has no host: nbd+unix:///EXPORT?socket=PATH")
		}
		socks := q["socket"]
		if len(socks) != 1 || socks[0] == "" {
			return bad("want exactly one socket=PATH parameter")
		}
		t.Network, t.Address = "unix", socks[0]
	case "nbds", "nbds+unix":
		return bad("TLS (%s) is not supported: reach the NBD server over a private network, a Unix socket or an SSH tunnel", u.Scheme)
	case "nbd+vsock", "nbds+vsock":
		return bad("vsock is not supported")
	default:
		return bad("scheme %q is not nbd or nbd+unix", u.Scheme)
	}
	return t, nil
}

// onlyParams fails on a query parameter other than those allowed (the spec
// asks clients to diagnose parameters they do not understand).
func onlyParams(q url.Values, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			if strings.HasPrefix(k, "tls") {
				return fmt.Errorf("query parameter %q: TLS is not supported", k)
			}
			return fmt.Errorf("unknown query parameter %q", k)
		}
	}
	return nil
}

// String is the target as a URI.
func (t Target) String() string {
	exp := (&url.URL{Path: t.Export}).EscapedPath()
	if t.Network == "unix" {
		return "nbd+unix:///" + exp + "?" + url.Values{"socket": {t.Address}}.Encode()
	}
	return "nbd://" + t.Address + "/" + exp
}
