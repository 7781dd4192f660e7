package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	idsOnce sync.Once
	ids     [3]*Identity
)

// testIDs returns three identities made once per test binary (key
// generation is the slow part).
func testIDs(t *testing.T) (a, b, c *Identity) {
	t.Helper()
	idsOnce.Do(func() {
		for i := range ids {
			id, err := New()
			if err != nil {
				panic(err)
			}
			ids[i] = id
		}
	})
	return ids[0], ids[1], ids[2]
}

// handshake runs a TLS handshake between server and client over loopback
// TCP and returns both sides' errors. In TLS 1.3 the client finishes before
// the server has checked its certificate, so a client whose handshake
// succeeded also reads once: a refused client learns it there.
func handshake(t *testing.T, server, client *tls.Config) (serr, cerr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer nc.Close()
		s := tls.Server(nc, server)
		if err = s.HandshakeContext(ctx); err == nil {
			_, err = s.Write([]byte{1})
		}
		done <- err
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(nc, client)
	if cerr = c.HandshakeContext(ctx); cerr == nil {
		_, cerr = c.Read(make([]byte, 1))
	}
	return <-done, cerr
}

func TestPinnedHandshake(t *testing.T) {
	srv, cli, stranger := testIDs(t)
	for _, tc := range []struct {
		name              string
		serverPins        Pins
		client            *Identity
		clientPins        Pins
		clientALPN        string
		wantServerRefusal error
		wantClientRefusal error
	}{
		{name: "both pinned", serverPins: Pins{cli.Fingerprint}, client: cli, clientPins: Pins{srv.Fingerprint}},
		{name: "client not pinned by server", serverPins: Pins{cli.Fingerprint}, client: stranger,
			clientPins: Pins{srv.Fingerprint}, wantServerRefusal: ErrUnknownPeer},
		{name: "server not pinned by client", serverPins: Pins{cli.Fingerprint}, client: cli,
			clientPins: Pins{stranger.Fingerprint}, wantClientRefusal: ErrUnknownPeer},
		{name: "other protocol", serverPins: Pins{cli.Fingerprint}, client: cli, clientPins: Pins{srv.Fingerprint},
			clientALPN: "aimwan/2", wantServerRefusal: ErrWrongALPN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			refusals := NewRefusals()
			server := Pinned{Identity: srv, Pins: tc.serverPins, ALPN: "test/1", Leg: "test",
				Logger: slog.New(slog.NewTextHandler(&logs, nil)), Refusals: refusals}
			alpn := "test/1"
			if tc.clientALPN != "" {
				alpn = tc.clientALPN
			}
			client := Pinned{Identity: tc.client, Pins: tc.clientPins, ALPN: alpn, Leg: "test", Logger: slog.New(slog.DiscardHandler)}
			serr, cerr := handshake(t, server.ServerConfig(), client.ClientConfig("server"))
			if tc.wantServerRefusal == nil && tc.wantClientRefusal == nil {
				if serr != nil || cerr != nil {
					t.Fatalf("handshake failed: server %v, client %v", serr, cerr)
				}
				return
			}
			if tc.wantServerRefusal != nil {
				if !errors.Is(serr, tc.wantServerRefusal) || !IsRefusal(serr) {
					t.Errorf("server error %v, want %v", serr, tc.wantServerRefusal)
				}
				if cerr == nil {
					t.Error("a client the server refused could read from the connection")
				}
			}
			if tc.wantClientRefusal != nil && !errors.Is(cerr, tc.wantClientRefusal) {
				t.Errorf("client error %v, want %v", cerr, tc.wantClientRefusal)
			}
			if tc.wantServerRefusal == ErrUnknownPeer {
				fp := tc.client.Fingerprint.String()
				if !strings.Contains(logs.String(), fp) {
					t.Errorf("refusal log does not name the fingerprint %s:\n%s", fp, logs.String())
				}
				if got := refusals.Counts()[fp]; got != 1 {
					t.Errorf("refusals counted %d for %s, want 1 (%v)", got, fp, refusals.Counts())
				}
			}
		})
	}
}

// TestRefusalsBounded: a peer making a new key for every attempt grows
// neither the label set nor the log without bound.
func TestRefusalsBounded(t *testing.T) {
	r := NewRefusals()
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	logged := 0
	for i := range 1000 {
		var fp Fingerprint
		fp[0], fp[1] = byte(i), byte(i>>8)
		if _, ok := r.record(fp.String()); ok {
			logged++
		}
	}
	c := r.Counts()
	if len(c) != MaxTracked+1 {
		t.Errorf("%d labels after 1000 distinct fingerprints, want %d", len(c), MaxTracked+1)
	}
	if c[OtherFingerprints] != 1000-MaxTracked {
		t.Errorf("other = %d, want %d", c[OtherFingerprints], 1000-MaxTracked)
	}
	if logged != refusalBurst {
		t.Errorf("logged %d of 1000 refusals at one instant, want the burst of %d", logged, refusalBurst)
	}
	now = now.Add(refusalEvery)
	suppressed, ok := r.record("")
	if !ok || suppressed != 1000-refusalBurst {
		t.Errorf("after a pause: logged %v with %d not logged before, want true and %d", ok, suppressed, 1000-refusalBurst)
	}
	if c := r.Counts(); c[NoFingerprint] != 1 {
		t.Errorf("none = %d, want 1", c[NoFingerprint])
	}
	var nilR *Refusals
	if _, ok := nilR.record("x"); !ok || nilR.Counts() != nil {
		t.Error("a nil Refusals must log everything and count nothing")
	}
}

// TestLoadRefusesOpenKey: a key file group or others may read is refused
// with the command that fixes it; after the fix it loads.
func TestLoadRefusesOpenKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "id")
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, KeyFile)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if !errors.Is(err, ErrKeyMode) {
			t.Fatalf("mode %04o: Load = %v, want ErrKeyMode", mode, err)
		}
		if want := "chmod 600 " + key; !strings.Contains(err.Error(), want) {
			t.Errorf("mode %04o: error %q does not say %q", mode, err, want)
		}
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

func TestParsePins(t *testing.T) {
	a, b, _ := testIDs(t)
	pins, err := ParsePins("--peer-fp", []string{a.Fingerprint.String() + ", " + b.Fingerprint.String(), a.Fingerprint.String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 2 || !pins.Has(a.Fingerprint) || !pins.Has(b.Fingerprint) {
		t.Errorf("pins %v, want a and b once each", pins)
	}
	if _, err := ParsePins("--peer-fp", []string{"nonsense"}); err == nil || !strings.Contains(err.Error(), "--peer-fp") {
		t.Errorf("bad fingerprint: %v, want an error naming --peer-fp", err)
	}
	if err := (Pinned{Identity: a, ALPN: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), "--peer-fp") {
		t.Errorf("no pins: %v", err)
	}
	if err := (Pinned{Pins: pins, ALPN: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), "aimwan keygen") {
		t.Errorf("no identity: %v", err)
	}
}
