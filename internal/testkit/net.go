package testkit

import (
	"io"
	"net"
	"testing"
)

// Cutter relays one TCP connection to target and cuts it (both directions)
// once limit bytes have gone from the client to target: a connection that
// breaks in the middle of a transfer. It returns the loopback address to
// dial instead of target; the listener closes when the test ends.
func Cutter(t testing.TB, target string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		out, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer out.Close()
		go io.Copy(in, out)
		io.CopyN(out, in, limit)
	}()
	return ln.Addr().String()
}
