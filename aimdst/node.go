package aimdst

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/transport/identity"
	"github.com/aimwan/aimwan/transport/push"
)

// Node is a destination node: it receives journal files over the LAN push
// protocol into the destination buffer and destages them, in order, to the
// destination volumes.
type Node struct {
	cfg      Config
	log      *slog.Logger
	vols     map[string]*volume
	groups   *groups
	metrics  *dstMetrics
	snaps    *snapshots         // snapshot store, retention
	refused  *identity.Refusals // peers refused on the push listener
	token    string             // the control endpoint's, written to TokenPath by NewNode
	bufBytes atomic.Int64       // bytes held in the destination buffer, all volumes (quarantine included)
	reserved atomic.Int64       // bytes booked for files being received, not yet written
	roomMu   sync.Mutex         // makes checking and booking room one step
}

// NewNode checks cfg, loads every volume's cursor and scans the destination
// buffer (files received before a restart are destaged first).
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := durable.MkdirAll(cfg.BufferDir, 0o700); err != nil {
		return nil, fmt.Errorf("dst: buffer folder: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, vols: map[string]*volume{}, metrics: newMetrics(), refused: identity.NewRefusals()}
	n.groups = newGroups(n)
	if err := n.openSnapshots(); err != nil {
		return nil, err
	}
	// The token is written before the caller binds the control listener, so
	// a client that finds the port open finds this run's token too.
	var err error
	if n.token, err = ctlapi.WriteToken(n.TokenPath()); err != nil {
		return nil, fmt.Errorf("dst: %w", err)
	}
	for _, vc := range cfg.Volumes {
		v, err := openVolumeState(n, vc)
		if err != nil {
			return nil, fmt.Errorf("dst: %w", err)
		}
		n.vols[vc.Name] = v
		n.metrics.initVolume(vc.Name)
	}
	if cfg.Registerer != nil {
		for _, c := range append(n.metrics.collectors(), statusCollector{n}, push.NewRefusalsCollector(n.refused),
			n.snaps.pruned, snapshotCollector{n.snaps, n.VolumeNames()}) {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("dst: register metrics: %w", err)
			}
		}
	}
	return n, nil
}

// VolumeNames lists the node's volumes, sorted.
func (n *Node) VolumeNames() []string {
	names := make([]string, 0, len(n.vols))
	for name := range n.vols {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// serveExpiry removes partial files nobody resumed, until ctx ends.
func (n *Node) serveExpiry(ctx context.Context) {
	t := time.NewTicker(min(n.cfg.PartExpiry/4, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, v := range n.vols {
				v.expireParts(now)
			}
		}
	}
}

// TokenPath is the control endpoint's token file (mode 0600), rewritten
// by every NewNode.
func (n *Node) TokenPath() string { return ctlapi.TokenPath(n.cfg.BufferDir) }

// Serve receives files on pushLn (mutual TLS: Config.Identity and Pins) and
// serves status on controlLn (nil: no control endpoint) until ctx ends,
// destaging every volume meanwhile. It closes the listeners and returns
// once every goroutine has ended.
func (n *Node) Serve(ctx context.Context, pushLn, controlLn net.Listener) error {
	auth := push.Auth{Identity: n.cfg.Identity, Peers: n.cfg.Pins, Refusals: n.refused}
	srv := &push.Server{Node: n.cfg.Node, Volumes: n.VolumeNames(), Handler: n, Auth: auth, Logger: n.log,
		MaxFileSize: n.cfg.MaxFileSize, MaxConns: n.cfg.MaxConns}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, pushLn) })
	if controlLn != nil {
		g.Go(func() error { return serveControl(ctx, controlLn, n, n.token, n.log) })
	}
	for _, v := range n.vols {
		g.Go(func() error { return v.serve(ctx) })
	}
	g.Go(func() error { return n.snaps.serve(ctx) })
	g.Go(func() error { n.serveExpiry(ctx); return nil })
	fp := "none"
	if n.cfg.Identity != nil {
		fp = n.cfg.Identity.Fingerprint.String()
	}
	n.log.Info("destination node serving", "push", pushLn.Addr().String(), "volumes", n.VolumeNames(), "fingerprint", fp)
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	n.log.Info("destination node stopped", "err", err)
	return err
}
