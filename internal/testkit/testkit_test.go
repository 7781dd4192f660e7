package testkit

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestFirstDiff(t *testing.T) {
	for _, tc := range []struct{ want, got, has string }{
		{"a\nb\nc", "a\nx\nc", "line 2"},
		{"a\nb", "a\nb\nc", "line 3"},
		{"\x00\x01\x02", "\x00\x01\x03", "byte 2: want 0x02, got 0x03"},
		{"\x00\x01", "\x00\x01\x02", "sizes 2 and 3"},
		{"same", "same", "equal"},
		{"\xff\xfe\x01", "\xff\xfd\x01", "byte 1: want 0xfe, got 0xfd"}, // binary without NULs
	} {
		if d := FirstDiff([]byte(tc.want), []byte(tc.got)); !strings.Contains(d, tc.has) {
			t.Errorf("FirstDiff(%q, %q) = %q, want it to contain %q", tc.want, tc.got, d, tc.has)
		}
	}
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	n := 0
	WaitFor(t, 0, "a condition that holds at once", func() bool { return true })
	WaitFor(t, 10e9, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
}

// TestCutter: the relay passes bytes both ways and cuts the connection after
// the limit.
func TestCutter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.Write([]byte("hello"))
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	c, err := net.Dial("tcp", Cutter(t, ln.Addr().String(), 1000))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello := make([]byte, 5)
	if _, err := io.ReadFull(c, hello); err != nil || string(hello) != "hello" {
		t.Fatalf("read through the cutter: %q, %v", hello, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for err == nil {
		_, err = c.Write(make([]byte, 4096))
	}
	if n := <-got; n != 1000 {
		t.Errorf("the target received %d bytes, want the limit 1000", n)
	}
}
