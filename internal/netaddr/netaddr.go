// Package netaddr holds address checks shared by the servers: whether a
// listen address reaches this host only.
package netaddr

import "net"

// IsLoopback reports whether addr (host:port) names only the loopback
// interface: "localhost", 127.0.0.0/8 or ::1. An empty host (":9100") listens
// on every interface and is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ListenerIsLoopback reports whether a listener's address reaches this host
// only: a loopback IP or a Unix socket.
func ListenerIsLoopback(a net.Addr) bool {
	if _, ok := a.(*net.UnixAddr); ok {
		return true
	}
	return IsLoopback(a.String())
}
