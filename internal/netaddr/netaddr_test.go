package netaddr

import (
	"net"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:9100": true,
		"127.8.0.1:9100": true,
		"[::1]:9100":     true,
		"localhost:9100": true,
		":9100":          false,
		"0.0.0.0:9100":   false,
		"10.0.0.1:9100":  false,
		"[::]:9100":      false,
		"example.com:80": false,
		"garbage":        false,
	}
	for addr, want := range tests {
		t.Run(addr, func(t *testing.T) {
			if got := IsLoopback(addr); got != want {
				t.Fatalf("IsLoopback(%q) = %v, want %v", addr, got, want)
			}
		})
	}
}

func TestListenerIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 1}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, true},
	} {
		if got := ListenerIsLoopback(tc.addr); got != tc.want {
			t.Errorf("ListenerIsLoopback(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
