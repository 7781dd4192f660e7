package push

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestServerConfig(t *testing.T) {
	h := &fakeHandler{}
	for _, tt := range []struct {
		name string
		s    Server
	}{
		{"no handler", Server{Node: "dst"}},
		{"no node", Server{Handler: h}},
		{"bad node", Server{Node: "a/b", Handler: h}},
		{"bad volume", Server{Node: "dst", Volumes: []string{".."}, Handler: h}},
		{"keepalive not below idle", Server{Node: "dst", Handler: h, KeepAlive: time.Minute, IdleTimeout: time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.s.Serve(context.Background(), ln); err == nil {
				t.Fatal("Serve accepted an invalid configuration")
			}
			if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("listener not closed: %v", err)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(context.Background(), addr, Hello{Node: "src"}, clientAuth()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("dial to a closed port: %v, want ErrUnavailable", err)
	}
	if _, err := Dial(context.Background(), addr, Hello{Node: "../src"}, clientAuth()); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("dial with a bad node name: %v, want a validation error", err)
	}
	// A server that accepts but never answers the hello: Dial gives up.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_, err = DialConfig{Auth: clientAuth(), Timeout: 200 * time.Millisecond}.Dial(context.Background(), silent.Addr().String(), Hello{Node: "src"})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("dial to a silent server: %v, want ErrUnavailable", err)
	}
}

func TestPushValidatesLocally(t *testing.T) {
	c := dial(t, startServer(t, &Server{Handler: newMemStore()}))
	err := c.Push(context.Background(), Offer{Volume: "vol1", Name: "../x", Size: 1}, nil)
	if !errors.Is(err, ErrBadOffer) {
		t.Errorf("push of a bad name: %v, want ErrBadOffer", err)
	}
	var re *RemoteError
	if errors.As(err, &re) {
		t.Errorf("local validation error is a RemoteError: %v", err)
	}
}
