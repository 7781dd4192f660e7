package link

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sim"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"sim"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRelayQUICWithLoss carries a QUIC stream through the relay with 2%
// datagram loss and reordering: QUIC recovers, the bytes arrive intact.
func TestRelayQUICWithLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srvTLS := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"sim-test"}}
	ln, err := quic.ListenAddr("127.0.0.1:0", srvTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() { // echo one stream
		conn, err := ln.Accept(ctx)
		if err != nil {
			done <- err
			return
		}
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(s, s)
		s.Close()
		done <- err
	}()
	relay := startRelay(t, ln.Addr().String(), PipeConfig{Rate: 2_000_000, Delay: 5 * time.Millisecond,
		Loss: 0.02, Reorder: 0.01, Seed: 3})
	conn, err := quic.DialAddr(ctx, relay, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"sim-test"}}, nil)
	if err != nil {
		t.Fatalf("dial QUIC through the relay: %v", err)
	}
	defer conn.CloseWithError(0, "")
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 512<<10)
	rand.Read(data)
	go func() {
		s.Write(data) //nolint:errcheck // the echo check below fails if it did not arrive
		s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes differ from the %d sent", len(got), len(data))
	}
	if err := <-done; err != nil {
		t.Errorf("echo server: %v", err)
	}
}
