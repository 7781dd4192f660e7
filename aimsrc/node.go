package aimsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
	"github.com/aimwan/aimwan/transport/identity"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Node is a running source node: its volumes and listeners.
type Node struct {
	cfg     Config
	log     *slog.Logger
	vols    map[string]*volume
	order   []string // volume names, sorted
	groups  map[string]GroupConfig
	space   *space
	nextHop *push.Redialer // the next hop (--push)
	pauses  *pauses        // what is paused (PausedFile)
	refused *identity.Refusals
	gseq    *groupSeqs

	groupMu sync.Mutex // held from taking a group marker id to placing the marker

	nbdLn, ctlLn, metLn net.Listener
	token               string // the control API's, written to TokenPath at start
	gatherer            prometheus.Gatherer
	schedMetric         *prometheus.CounterVec // scheduled marker slots
	rec                 *metrics.Recorder      // nil: not recording
}

var _ nbd.Exports = (*Node)(nil)

// NewNode opens the node's volumes (creating missing images at their configured
// size, recovering journals left open by a crash and redoing their records
// into the images) and binds its listeners. Serve runs it; Close releases
// everything when Serve is never called.
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := durable.MkdirAll(cfg.Buffer, 0o700); err != nil {
		return nil, fmt.Errorf("create source buffer: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, vols: map[string]*volume{}, groups: map[string]GroupConfig{},
		space: &space{limit: cfg.BufferLimit}, gseq: &groupSeqs{dir: cfg.Buffer}, refused: identity.NewRefusals(),
		schedMetric: newScheduleMetric()}
	for _, g := range cfg.Groups {
		n.groups[g.Name] = g
	}
	var err error
	if n.pauses, err = loadPauses(cfg.Buffer); err != nil {
		return nil, err
	}
	hello := push.Hello{Node: cfg.Node}
	for _, vc := range cfg.Volumes {
		v, err := n.openVolume(vc)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.vols[v.name] = v
		n.order = append(n.order, v.name)
		n.space.vols = append(n.space.vols, v)
		hello.Volumes = append(hello.Volumes, v.name)
	}
	slices.Sort(n.order)
	auth := push.Auth{Identity: cfg.Identity, Peers: cfg.Pins, Refusals: n.refused}
	n.nextHop = &push.Redialer{Addr: cfg.Push, Hello: hello, Dial: push.DialConfig{Auth: auth, Logger: n.log}}
	for _, v := range n.vols {
		v.sums = n.nextHop // a delta initialize compares with the next hop
	}
	if err := n.listen(); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.registerMetrics(); err != nil {
		n.Close()
		return nil, err
	}
	if cfg.Record != "" {
		rec, err := metrics.NewRecorder(metrics.RecorderConfig{Dir: cfg.Record, Daemon: cfg.recordName,
			Gatherer: n.gatherer, Logger: n.log})
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("%w: --record: %w", ErrConfig, err)
		}
		n.rec = rec
	}
	return n, nil
}

func (n *Node) listen() error {
	var err error
	// The token, then the control API, then the NBD export: a client that
	// finds a port open finds this run's token and control API too.
	if n.token, err = ctlapi.WriteToken(n.TokenPath()); err != nil {
		return err
	}
	if n.ctlLn, err = net.Listen("tcp", n.cfg.Control); err != nil {
		return fmt.Errorf("listen --control: %w", err)
	}
	if n.nbdLn, err = net.Listen("tcp", n.cfg.NBD); err != nil {
		return fmt.Errorf("listen --nbd: %w", err)
	}
	if n.cfg.Metrics != "off" {
		if n.metLn, err = net.Listen("tcp", n.cfg.Metrics); err != nil {
			return fmt.Errorf("listen --metrics: %w", err)
		}
	}
	return nil
}

// openVolume opens one volume's image, dirty bitmap and journal.
func (n *Node) openVolume(vc VolumeConfig) (*volume, error) {
	img, err := openImage(vc.Path, vc.Size)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", vc.Name, err)
	}
	v := &volume{name: vc.Name, dir: filepath.Join(n.cfg.Buffer, vc.Name), size: img.size, img: img,
		log: n.log.With("volume", vc.Name), space: n.space, now: n.cfg.Now, pushing: newPushState(),
		pushKick: make(chan struct{}, 1), spaceKick: make(chan struct{}, 1), initReq: make(chan int64, 1),
		initPath: filepath.Join(n.cfg.Buffer, vc.Name+".init"), heartbeat: n.cfg.Heartbeat, opened: n.cfg.Now()}
	v.state.Store(StateNormal)
	if err := v.openJournal(n.cfg); err != nil {
		v.close()
		return nil, err
	}
	if err := v.loadDrain(n.cfg.Buffer); err != nil {
		v.close()
		return nil, err
	}
	if err := v.resumeInit(); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// openJournal opens the bitmap and the journal, redoes recovered records
// into the image and counts the files waiting.
func (v *volume) openJournal(cfg Config) error {
	var err error
	v.dirty, err = openBitmap(filepath.Join(cfg.Buffer, v.name+".dirty"), v.size, cfg.DirtyGranularity)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	if v.dirty.count.Load() > 0 {
		v.log.Warn("dirty regions left from an earlier run: resync will journal them", "dirty_bytes", v.dirty.dirtyBytes())
	}
	// The journal rotates by size, record count and age; the size seal waits
	// for the image write (DeferSeal, see volume.sealIfFull).
	w, recovered, err := journal.OpenWriter(journal.WriterConfig{Dir: v.dir, Volume: v.name, VolumeSize: v.size,
		MaxFileSize: cfg.journalFileSize(), MaxAge: cfg.FileAge, Now: cfg.Now, OnSeal: v.onSeal, Logger: cfg.Logger,
		Coalesce: cfg.Coalesce > 0, OnCoalesce: v.onCoalesce, DeferSeal: true})
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.jw = w
	if len(recovered) > 0 {
		if err := v.redo(w, recovered); err != nil {
			return err
		}
	}
	if v.al, err = openActivityLog(cfg.Buffer, v.name, v.size); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	if n, err := v.al.recover(v.dirty); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	} else if n > 0 {
		v.log.Warn("unclean stop: recently written extents will be journaled again from the image (resync)",
			"extents", n, "dirty_bytes", v.dirty.dirtyBytes())
	}
	seqs, err := journal.ListSealed(v.dir)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	var total int64
	for _, seq := range seqs {
		path := filepath.Join(v.dir, journal.FileName(seq))
		if st, err := os.Stat(path); err == nil {
			total += st.Size()
			v.pushing.setWaiting(seq, st.ModTime()) // refined when pushing reads the file
		}
		v.pushing.isStart(seq, path) // learns the files that start a stream
	}
	if seq, kind := w.OpenStart(); kind != journal.StartNone {
		v.pushing.setStreamStart(seq) // an initialize began a stream; its first file is still open
	}
	v.sealedBytes.Store(total)
	v.sealedFiles.Store(int64(len(seqs)))
	v.setState()
	return nil
}

// redo applies records recovered from a crashed open file to the image, so
// image and journals agree, and makes the image durable.
func (v *volume) redo(w *journal.Writer, recs []journal.Record) error {
	for _, r := range recs {
		var err error
		switch r.Kind {
		case journal.KindWrite:
			var data []byte
			if data, err = w.RecoveredData(r); err == nil {
				err = v.img.writeAt(data, r.Offset)
			}
		case journal.KindZero:
			err = v.img.zero(r.Offset, r.Length, true)
		case journal.KindTrim:
			err = v.img.zero(r.Offset, r.Length, true)
		}
		if err != nil {
			return fmt.Errorf("volume %s: redo recovered record %d: %w", v.name, r.Seq, err)
		}
	}
	if err := v.img.sync(); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.log.Info("redid records recovered from the journal into the image", "records", len(recs),
		"first_seq", recs[0].Seq, "last_seq", recs[len(recs)-1].Seq)
	return nil
}

// Lookup returns the export of a volume.
func (n *Node) Lookup(name string) (nbd.Export, error) {
	v, ok := n.vols[name]
	if !ok {
		return nil, fmt.Errorf("volume %q: %w", name, nbd.ErrUnknownExport)
	}
	return v, nil
}

// Names lists the exports (volume names, sorted).
func (n *Node) Names() []string { return slices.Clone(n.order) }

// TokenPath is the control API's token file (mode 0600), rewritten at
// every start: the command line reads it (--buffer, --config or --token).
func (n *Node) TokenPath() string { return ctlapi.TokenPath(n.cfg.Buffer) }

// NBDAddr, ControlAddr and MetricsAddr return the bound listen addresses
// (nil MetricsAddr when metrics are off).
func (n *Node) NBDAddr() net.Addr     { return n.nbdLn.Addr() }
func (n *Node) ControlAddr() net.Addr { return n.ctlLn.Addr() }
func (n *Node) MetricsAddr() net.Addr {
	if n.metLn == nil {
		return nil
	}
	return n.metLn.Addr()
}

// Serve runs the node until ctx ends: the NBD server, the control API,
// metrics, and per volume pushing, age sealing, resync and initialize.
// It closes the node when it returns.
func (n *Node) Serve(ctx context.Context) error {
	defer n.Close()
	n.log.Info("source node up", "node", n.cfg.Node, "nbd", n.nbdLn.Addr().String(),
		"control", n.ctlLn.Addr().String(), "push", n.cfg.Push, "volumes", n.order,
		"fingerprint", n.cfg.Identity.Fingerprint.String())
	g, gctx := errgroup.WithContext(ctx)
	srv := &nbd.Server{Exports: n, Logger: n.log, MaxConns: n.cfg.NBDMaxConns}
	g.Go(func() error { return srv.Serve(gctx, n.nbdLn) })
	g.Go(func() error { return n.serveControl(gctx, n.ctlLn) })
	if n.metLn != nil {
		g.Go(func() error { return metrics.ServeMetricsListener(gctx, n.metLn, n.gatherer, n.log) })
	}
	if n.rec != nil {
		g.Go(func() error { return n.rec.Serve(gctx) })
	}
	for _, sc := range n.cfg.Schedules {
		g.Go(func() error { return n.serveSchedule(gctx, sc) })
	}
	g.Go(func() error { return n.nextHop.Keep(gctx, linkProbe) })
	for _, name := range n.order {
		v := n.vols[name]
		sh := &pusher{v: v, p: n.nextHop, pauses: n.pauses, window: n.cfg.PushWindow, retryMax: n.cfg.RetryMax, done: make(chan struct{}, 1)}
		g.Go(func() error { return sh.Serve(gctx) })
		g.Go(func() error { return v.serveSealer(gctx, n.fileAge()) })
		g.Go(func() error { return v.serveResync(gctx) })
		g.Go(func() error { return v.serveInit(gctx) })
	}
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)) {
		err = nil
	}
	return err
}

// linkProbe is how often the node dials its next hop while no connection
// is up, so status sees a next hop that went away even while nothing is
// pushed.
const linkProbe = 3 * time.Second

func (n *Node) fileAge() time.Duration {
	if n.cfg.FileAge > 0 {
		return n.cfg.FileAge
	}
	return journal.DefaultMaxAge
}

// serveSealer seals the open journal file by age, so a quiet volume's writes
// still leave within the file age.
func (v *volume) serveSealer(ctx context.Context, age time.Duration) error {
	t := time.NewTicker(max(age/4, 20*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := v.sealOld(); err != nil {
			return err
		}
	}
}

// Close seals the journals and closes images, bitmaps, listeners and the
// push connection. Serve calls it; calling it again is harmless.
func (n *Node) Close() error {
	var errs []error
	for _, ln := range []net.Listener{n.nbdLn, n.ctlLn, n.metLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if n.nextHop != nil {
		n.nextHop.Close()
	}
	for _, name := range n.order {
		errs = append(errs, n.vols[name].close())
	}
	n.order = nil
	return errors.Join(errs...)
}
