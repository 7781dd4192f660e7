package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/transport"
	"github.com/aimwan/aimwan/transport/identity"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"golang.org/x/sync/errgroup"
)

// DestConfig configures the destination-edge proxy. Zero fields mean
// defaults unless marked required.
type DestConfig struct {
	// Node is this proxy's name in hellos. "" means "proxy-destination".
	Node string
	// Push is dst's push address (host:port), where rebuilt files are
	// pushed (the --lan-forward flag). Required.
	Push string
	// Identity is this node's key pair, presented to dst too. Required.
	Identity *transport.Identity
	// LANPins are the fingerprints dst may present (--lan-peer-fp).
	// Required: the LAN leg is mutual TLS too.
	LANPins transport.Pins
	// Dial tunes the push connection to dst (its Auth is made of Identity
	// and LANPins).
	Dial push.DialConfig
	// Store is the chunk cache; nil means a memory-only store of dedupe's
	// default size. Its owner (a Node) opens it and runs its saves.
	Store *dedupe.Store
	// Params are the chunking parameters; they must equal the peer's.
	Params dedupe.Params
	// MaxFileSize is the largest file accepted. 0 means push.DefaultMaxFileSize.
	MaxFileSize int64
	// MaxMemory bounds the bytes held for files at once: each file's
	// encoded data and the file rebuilt from it, from its FILE frame until
	// dst's verdict. A file that would pass it is answered buffer-full (the
	// source keeps it and retries), unless nothing else is held, so one
	// file of MaxFileSize always goes through. 0 means DefaultDestMaxMemory.
	MaxMemory int64
	// MissWait caps how long a file waits for its turn: for the files sent
	// before it, still arriving, to be decoded first (they bring the chunks
	// and successor links its references, runs and dictionary bases rely
	// on). The wait ends by itself when those files are done; this is a
	// safety cap. 0 means 10 minutes; negative means never wait (decode as
	// the data completes, and ask back what is missing).
	MissWait time.Duration
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c DestConfig) withDefaults() DestConfig {
	if c.Node == "" {
		c.Node = "proxy-destination"
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = push.DefaultMaxFileSize
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultDestMaxMemory
	}
	if c.MissWait == 0 {
		c.MissWait = 10 * time.Minute
	}
	c.MissWait = max(c.MissWait, 0)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Dial.Logger == nil {
		c.Dial.Logger = c.Logger
	}
	c.Dial.Auth = push.Auth{Identity: c.Identity, Peers: c.LANPins, Refusals: identity.NewRefusals()}
	return c
}

func (c DestConfig) validate() error {
	switch {
	case c.Push == "":
		return errors.New("destination proxy: no dst address to push to")
	case c.Identity == nil:
		return errors.New("destination proxy: no identity")
	case len(c.LANPins) == 0:
		return errors.New("destination proxy: no pinned dst (--lan-peer-fp: the fingerprint of dst)")
	}
	return nil
}

// Dest is the destination-edge proxy: it accepts files from the source edge
// over QUIC, rebuilds and verifies them, pushes them to dst and relays dst's
// verdict.
type Dest struct {
	cfg      DestConfig
	log      *slog.Logger
	paramsID string
	store    *dedupe.Store
	dec      *dedupe.Decoder
	dst      *push.Redialer // the push connection to dst
	m        *proxyMetrics
	conns    connSet
	arriving arrivals
	mem      atomic.Int64         // bytes booked for files being received, rebuilt and pushed (see DestConfig.MaxMemory)
	parts    *transport.Assembler // striped transfers (STRIPED)
}

// NewDest validates cfg and builds the destination edge.
func NewDest(cfg DestConfig) (*Dest, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p, err := cfg.Params.Normalize()
	if err != nil {
		return nil, fmt.Errorf("destination proxy: %w", err)
	}
	store := cfg.Store
	if store == nil {
		if store, err = dedupe.OpenStore(dedupe.StoreConfig{Logger: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("destination proxy: %w", err)
		}
	}
	dec, err := dedupe.NewDecoder(dedupe.DecoderConfig{Params: p, Store: store, MaxPayload: cfg.MaxFileSize})
	if err != nil {
		return nil, fmt.Errorf("destination proxy: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("destination proxy metrics: %w", err)
	}
	if err := registerStores(cfg.Registerer, storeSource{"chunks", store.Stats}); err != nil {
		return nil, fmt.Errorf("destination proxy metrics: %w", err)
	}
	log := cfg.Logger.With("role", "destination-edge")
	d := &Dest{cfg: cfg, log: log, paramsID: p.ID(), store: store, dec: dec, m: m,
		parts: transport.NewAssembler(transport.AssemblerConfig{Logger: log}),
		dst:   &push.Redialer{Addr: cfg.Push, Dial: cfg.Dial, Hello: push.Hello{Node: cfg.Node}}}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(transport.NewStatsCollector("source-edge", d.conns.list)); err != nil {
			return nil, fmt.Errorf("destination proxy metrics: %w", err)
		}
		if err := cfg.Registerer.Register(push.NewRefusalsCollector(cfg.Dial.Auth.Refusals)); err != nil {
			return nil, fmt.Errorf("destination proxy metrics: %w", err)
		}
	}
	return d, nil
}

// book reserves the memory a file needs (its encoded data and the rebuilt
// file) or refuses it with push.ErrBufferFull; see DestConfig.MaxMemory.
func (d *Dest) book(name string, need int64) error {
	if now := d.mem.Add(need); now > d.cfg.MaxMemory && now != need {
		d.mem.Add(-need)
		d.log.Warn("file refused: the destination edge holds its memory limit of files", "file", name, "need", need,
			"held", now-need, "limit", d.cfg.MaxMemory)
		return fmt.Errorf("%w: destination edge holds %d bytes of files (limit %d), file %s needs %d more",
			push.ErrBufferFull, now-need, d.cfg.MaxMemory, name, need)
	}
	return nil
}

// fileCost is what a file booked: its encoded data and the rebuilt file.
func fileCost(hdr FileHeader) int64 { return hdr.Size + hdr.MetaLen + hdr.StreamLen }

// Store returns the chunk cache.
func (d *Dest) Store() *dedupe.Store { return d.store }

// Serve accepts WAN connections on ln until ctx ends. It closes ln on
// return, after closing the connections.
func (d *Dest) Serve(ctx context.Context, ln *transport.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-ctx.Done()
		d.dst.Close()
		return nil
	})
	g.Go(func() error {
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				if ctx.Err() != nil || transport.IsClosed(err) {
					return nil
				}
				return err
			}
			g.Go(func() error { d.serveConn(ctx, c); return nil })
		}
	})
	err := g.Wait()
	if cerr := ln.Close(); err == nil {
		err = cerr
	}
	return err
}

// serveConn runs one connection: handshake, then one goroutine per file
// stream.
func (d *Dest) serveConn(ctx context.Context, c *quic.Conn) {
	if err := d.acceptHandshake(ctx, c); err != nil {
		code := transport.CloseProtocol
		if errors.Is(err, ErrIncompatible) {
			code = transport.CloseRefused
			d.log.Error("refused WAN peer", "remote", c.RemoteAddr().String(), "err", err)
		} else {
			d.log.Warn("WAN handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		_ = c.CloseWithError(code, err.Error())
		return
	}
	d.conns.add(c)
	defer d.conns.remove(c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.CloseWithError(transport.CloseShutdown, "shutting down") })
	defer stop()
	var files errgroup.Group
	defer func() { cancel(); _ = files.Wait() }() // in-flight files end with the connection
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			if !transport.IsClosed(err) && ctx.Err() == nil {
				d.log.Warn("WAN connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		arrived := d.arriving.begin() // here, in stream order (= the source's encode order)
		files.Go(func() error { d.serveStream(ctx, c, st, arrived); return nil })
	}
}

// serveStream tells a part stream (transport.PartTag) from a file stream by
// its first byte and serves it.
func (d *Dest) serveStream(ctx context.Context, c *quic.Conn, st *quic.Stream, arrived arrival) {
	var first [1]byte
	if _, err := io.ReadFull(st, first[:]); err != nil {
		arrived.done()
		st.CancelRead(streamProtocol)
		st.CancelWrite(streamProtocol)
		return
	}
	if first[0] == transport.PartTag {
		arrived.done()
		if err := d.parts.ServeLane(ctx, st, d.receivedFrom(c)); err != nil && ctx.Err() == nil {
			d.log.Debug("part stream refused", "err", err)
		}
		return
	}
	d.serveFile(ctx, st, io.MultiReader(bytes.NewReader(first[:]), st), arrived)
}

// receivedFrom returns a function summing the bytes received on the
// connections from c's peer (the sender's rate controller measures the
// path's delivery rate with it).
func (d *Dest) receivedFrom(c *quic.Conn) func() uint64 {
	fp := peerFingerprint(c)
	return func() uint64 {
		var n uint64
		for _, o := range d.conns.list() {
			if o == c || peerFingerprint(o) == fp {
				n += o.ConnectionStats().BytesReceived
			}
		}
		return n
	}
}

// peerFingerprint is the fingerprint of c's peer certificate.
func peerFingerprint(c *quic.Conn) transport.Fingerprint {
	certs := c.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return transport.Fingerprint{}
	}
	return transport.FingerprintOf(certs[0].Raw)
}
