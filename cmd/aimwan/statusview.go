package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/transport/push"
)

// Chain states of a volume (aimwan status), in the order they win: the
// first that applies is shown.
const (
	chainUnknown       = "unknown"             // the source cannot be read
	chainInitializing  = "initializing"        // an initialize is running
	chainPaused        = "paused"              // aimwan src pause
	chainPullAhead     = "pull-ahead"          // the source buffer is full: only the dirty bitmap records writes
	chainResync        = "resync"              // dirty regions are journaled again
	chainLinkDown      = "link down"           // a hop between source and destination is down
	chainDstOffline    = "destination offline" // dst is unreachable or its volume is offline
	chainCaughtUp      = "caught up"           // nothing waits at the source nor at dst
	chainReplicating   = "replicating"         // data is on its way
	chainDstNotTracked = "not at destination"  // dst answers but does not serve the volume
)

// srcDoc is what status reads of `src status` JSON: its own struct, so a
// field a source node of another version lacks (time_latency_s,
// rate_bytes_per_s, eta_s) reads as absent and shows "-".
type srcDoc struct {
	Node    string            `json:"node"`
	Push    string            `json:"push"`
	Link    *push.LinkState   `json:"link"`
	Paused  aimsrc.PauseState `json:"paused"`
	Volumes []srcVolDoc       `json:"volumes"`
}

type srcVolDoc struct {
	Name          string   `json:"name"`
	State         string   `json:"state"`
	SrcDataBytes  int64    `json:"src_data_bytes"`
	FilesWaiting  int64    `json:"files_waiting"`
	LastPushError string   `json:"last_push_error"`
	PausedBy      string   `json:"paused_by"`
	TimeLatency   *float64 `json:"time_latency_s"`
	Rate          *float64 `json:"rate_bytes_per_s"`
	ETA           *float64 `json:"eta_s"`
	Init          struct {
		Running bool    `json:"running"`
		Percent float64 `json:"percent"`
		Error   string  `json:"error"`
	} `json:"init"`
}

// nodeView is what status learnt of src or dst.
type nodeView struct {
	Control string `json:"control,omitempty"`
	Metrics string `json:"metrics,omitempty"`
	Via     string `json:"via,omitempty"` // control or metrics: where the figures come from
	Up      bool   `json:"up"`
	Error   string `json:"error,omitempty"`
	Node    string `json:"node,omitempty"`
	// Link (source only) is the source's link to its next hop.
	Link *push.LinkState `json:"link,omitempty"`
	// Paused (source only) is what is paused.
	Paused *aimsrc.PauseState `json:"paused,omitempty"`
}

// proxyView is what status learnt of one proxy edge from its /metrics.
type proxyView struct {
	Role    string `json:"role"` // metrics.RoleSource or metrics.RoleDestination
	Metrics string `json:"metrics"`
	Up      bool   `json:"up"` // /metrics answered
	Error   string `json:"error,omitempty"`
	// PeerUp: the WAN session to the other proxy (nil: not known).
	PeerUp        *bool    `json:"peer_up"`
	RTTSeconds    *float64 `json:"rtt_s"`               // smoothed RTT, the best WAN connection
	WANRate       *float64 `json:"wan_bytes_per_s"`     // bytes/s on the WAN (sent at the source edge, received at the destination edge)
	LogicalRate   *float64 `json:"logical_bytes_per_s"` // journal-file bytes/s carried
	Reduction     *float64 `json:"reduction"`           // logical / wire since start (source edge)
	CacheHitRatio *float64 `json:"cache_hit_ratio"`     // chunks sent as references / all (source edge)
	CacheBytes    *float64 `json:"cache_bytes"`         // chunk store size
	CacheCapacity *float64 `json:"cache_capacity_bytes"`
}

// volumeView is one volume's line.
type volumeView struct {
	Volume       string   `json:"volume"`
	State        string   `json:"state"`
	SrcDataBytes *int64   `json:"src_data_bytes"`
	TimeLatency  *float64 `json:"time_latency_s"`
	Rate         *float64 `json:"rate_bytes_per_s"`
	ETA          *float64 `json:"eta_s"`
	InitPercent  *float64 `json:"init_percent,omitempty"`
	DstWaiting   *int     `json:"dst_files_waiting,omitempty"`
	LastError    string   `json:"last_error,omitempty"`
}

// chainView is the whole `aimwan status` screen.
type chainView struct {
	Time        time.Time    `json:"time"`
	Source      nodeView     `json:"source"`
	Proxies     []proxyView  `json:"proxies"`
	Destination nodeView     `json:"destination"`
	Volumes     []volumeView `json:"volumes"`
}

// dstVol is what status needs of a destination volume, from dst's control
// API or its metrics.
type dstVol struct {
	TimeLatency  *float64
	FilesWaiting *int
	Offline      bool
	State        string
}

// proxyDown says why a proxy breaks the chain (it does not answer, or its
// WAN session is down), or "".
func (c *chainView) proxyDown() string {
	for _, p := range c.Proxies {
		switch {
		case !p.Up:
			return fmt.Sprintf("%s proxy unreachable: %s", p.Role, p.Error)
		case p.PeerUp != nil && !*p.PeerUp:
			return fmt.Sprintf("%s proxy: WAN session to its peer down", p.Role)
		}
	}
	return ""
}

// srcLinkDown says why the source's link to its next hop is down, or "".
func (c *chainView) srcLinkDown() string {
	if l := c.Source.Link; c.Source.Up && l != nil && l.State == push.LinkDown {
		return fmt.Sprintf("source's next hop down since %s: %s", l.Since.Local().Format("15:04:05"), l.Error)
	}
	return ""
}

// volumes builds the volume lines from the source's status and dst's
// volumes (either may be missing).
func (c *chainView) volumes(src *srcDoc, dst map[string]dstVol) {
	proxyDown, srcDown := c.proxyDown(), c.srcLinkDown()
	var names []string
	if src != nil {
		for _, v := range src.Volumes {
			names = append(names, v.Name)
		}
	}
	for name := range dst {
		if src == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		vv := volumeView{Volume: name, State: chainUnknown}
		d, atDst := dst[name]
		vv.TimeLatency, vv.DstWaiting = d.TimeLatency, d.FilesWaiting
		var sv *srcVolDoc
		if src != nil {
			sv = &src.Volumes[slices.IndexFunc(src.Volumes, func(v srcVolDoc) bool { return v.Name == name })]
			vv.SrcDataBytes, vv.Rate, vv.ETA, vv.LastError = &sv.SrcDataBytes, sv.Rate, sv.ETA, sv.LastPushError
			if vv.ETA != nil && *vv.ETA < 0 { // src: data waits, nothing acked lately
				vv.ETA = nil
			}
			if vv.TimeLatency == nil {
				vv.TimeLatency = sv.TimeLatency
			}
			if sv.Init.Running {
				vv.InitPercent = &sv.Init.Percent
			}
		}
		vv.State = chainState(sv, d, atDst, c.Destination.Up, proxyDown, srcDown)
		switch {
		case vv.State == chainLinkDown && vv.LastError == "":
			vv.LastError = or(proxyDown, srcDown)
		case vv.State == chainDstOffline && d.State != "" && vv.LastError == "":
			vv.LastError = "dst: " + d.State
		case vv.State == chainDstOffline && vv.LastError == "":
			vv.LastError = "dst: " + c.Destination.Error
		}
		c.Volumes = append(c.Volumes, vv)
	}
}

// chainState is a volume's state (see the chain* constants). A proxy that
// breaks the chain is named before dst (dst read over a WAN that is down
// does not answer either); dst before the source's link (the source's next
// hop is dst itself without proxies, and a dst that is down makes the
// proxies answer unavailable).
func chainState(sv *srcVolDoc, d dstVol, atDst, dstUp bool, proxyDown, srcDown string) string {
	switch {
	case sv == nil:
		return chainUnknown
	case sv.Init.Running:
		return chainInitializing
	case sv.PausedBy != "":
		return chainPaused
	case sv.State == aimsrc.StatePullAhead:
		return chainPullAhead
	case sv.State == aimsrc.StateResync:
		return chainResync
	case proxyDown != "":
		return chainLinkDown
	case !dstUp || d.Offline:
		return chainDstOffline
	case srcDown != "":
		return chainLinkDown
	case !atDst:
		return chainDstNotTracked
	case caughtUp(sv, d):
		return chainCaughtUp
	}
	return chainReplicating
}

// Caught up within a few seconds: an idle volume's heartbeat files (a
// watermark, a few hundred bytes every few seconds) are often on their way.
const (
	caughtUpLatency = 15       // seconds of Time Latency at most
	caughtUpSrcData = 64 << 10 // bytes waiting at the source at most
)

// caughtUp: nothing waits at src nor at dst, or the volume is current
// within caughtUpLatency with next to nothing waiting at src.
func caughtUp(sv *srcVolDoc, d dstVol) bool {
	if sv.SrcDataBytes == 0 && sv.FilesWaiting == 0 && (d.FilesWaiting == nil || *d.FilesWaiting == 0) {
		return true
	}
	lat := d.TimeLatency
	if lat == nil {
		lat = sv.TimeLatency
	}
	return lat != nil && *lat <= caughtUpLatency && sv.SrcDataBytes <= caughtUpSrcData
}

// dstVolsFromStatus reads dst's control API status.
func dstVolsFromStatus(st aimdst.Status) map[string]dstVol {
	out := map[string]dstVol{}
	for _, v := range st.Volumes {
		lat, waiting := v.TimeLatency, v.FilesWaiting
		out[v.Volume] = dstVol{TimeLatency: &lat, FilesWaiting: &waiting, Offline: v.Offline, State: v.State}
	}
	return out
}

// dstVolsFromMetrics reads dst's volumes from its /metrics (when its
// control token is not at hand).
func dstVolsFromMetrics(s *scrape) map[string]dstVol {
	out := map[string]dstVol{}
	vol := func(name string) dstVol { return out[name] }
	for _, sr := range s.fam[metrics.TimeLatency] {
		d := vol(sr.labels["volume"])
		lat := sr.value
		d.TimeLatency = &lat
		out[sr.labels["volume"]] = d
	}
	for _, sr := range s.fam[metrics.DstFilesWaiting] {
		d := vol(sr.labels["volume"])
		n := int(sr.value)
		d.FilesWaiting = &n
		out[sr.labels["volume"]] = d
	}
	for _, sr := range s.fam[metrics.DstVolumeOffline] {
		d := vol(sr.labels["volume"])
		d.Offline = sr.value != 0
		if d.Offline {
			d.State = "offline"
		}
		out[sr.labels["volume"]] = d
	}
	return out
}

// proxyFromScrape fills a proxy line from its scrape (and the one before,
// for rates).
func proxyFromScrape(p *proxyView, s, prev *scrape) {
	role := roleLabel(p.Role)
	ptr := func(v float64, ok bool) *float64 {
		if !ok {
			return nil
		}
		return &v
	}
	if v, ok := s.sum(metrics.ProxyPeerUp, role); ok {
		up := v > 0
		p.PeerUp = &up
	} else if _, ok := s.sum(metrics.ProxyPeerRTT, nil); p.Role == metrics.RoleDestination {
		p.PeerUp = &ok // the destination edge has WAN connections while its peer is up
	}
	p.RTTSeconds = ptr(s.min(metrics.ProxyPeerRTT, nil))
	p.LogicalRate = ptr(s.rate(prev, metrics.ProxyLogical, role))
	if p.Role == metrics.RoleSource {
		p.WANRate = ptr(s.rate(prev, metrics.ProxyWire, role))
		logical, ok1 := s.sum(metrics.ProxyLogical, role)
		wire, ok2 := s.sum(metrics.ProxyWire, role)
		if ok1 && ok2 && wire > 0 {
			p.Reduction = ptr(logical/wire, true)
		}
		hits, ok1 := s.sum(metrics.ProxyCacheHits, nil)
		misses, ok2 := s.sum(metrics.ProxyCacheMisses, nil)
		if ok1 && ok2 && hits+misses > 0 {
			p.CacheHitRatio = ptr(hits/(hits+misses), true)
		}
	} else {
		p.WANRate = ptr(s.rate(prev, metrics.ProxyPeerQUICReceived, nil))
	}
	store := map[string]string{"store": "chunks"}
	p.CacheBytes = ptr(s.sum(metrics.ProxyStoreBytes, store))
	p.CacheCapacity = ptr(s.sum(metrics.ProxyStoreCapacity, store))
}

// dash formats an optional figure, "-" when absent.
func dash[T any](v *T, f func(T) string) string {
	if v == nil {
		return "-"
	}
	return f(*v)
}

func fmtSeconds(s float64) string {
	if s >= 3600 {
		return (time.Duration(s) * time.Second).String()
	}
	return fmt.Sprintf("%.1fs", s)
}

func fmtRate(r float64) string { return units.FormatSize(int64(r)) + "/s" }

// printChain draws the status screen.
func printChain(out io.Writer, c *chainView) {
	fmt.Fprintf(out, "aimwan status  %s\n", c.Time.Local().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(out, "%-18s %s\n", "source", nodeLine(c.Source))
	for _, p := range c.Proxies {
		fmt.Fprintf(out, "%-18s %s\n", p.Role+" proxy", proxyLine(p))
	}
	fmt.Fprintf(out, "%-18s %s\n\n", "destination", nodeLine(c.Destination))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tSTATE\tSRC DATA\tTIME LATENCY\tRATE\tETA\tLAST ERROR")
	for _, v := range c.Volumes {
		state := v.State
		if v.InitPercent != nil {
			state = fmt.Sprintf("%s %.1f%%", state, *v.InitPercent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Volume, state,
			dash(v.SrcDataBytes, units.FormatSize), dash(v.TimeLatency, fmtSeconds),
			dash(v.Rate, fmtRate), dash(v.ETA, fmtSeconds), oneLine(v.LastError, 100))
	}
	tw.Flush()
}

func nodeLine(n nodeView) string {
	addr := n.Control
	if n.Via == "metrics" || addr == "" {
		addr = n.Metrics
	}
	if !n.Up {
		return fmt.Sprintf("%s  UNREACHABLE: %s", addr, oneLine(n.Error, 120))
	}
	s := addr + "  up"
	if n.Node != "" {
		s += "  node " + n.Node
	}
	if n.Via == "metrics" {
		s += "  (from its metrics: no control token)"
	}
	if l := n.Link; l != nil {
		switch l.State {
		case push.LinkDown:
			s += fmt.Sprintf("  next hop DOWN since %s (%s): %s", l.Since.Local().Format("15:04:05"),
				time.Since(l.Since).Round(time.Second), oneLine(l.Error, 100))
		default:
			s += "  next hop " + l.State
		}
	}
	if p := n.Paused; p != nil && p.All {
		s += "  PAUSED (whole destination)"
	} else if p != nil && len(p.Volumes) > 0 {
		s += "  paused: " + strings.Join(p.Volumes, ",")
	}
	return s
}

func proxyLine(p proxyView) string {
	if !p.Up {
		return fmt.Sprintf("%s  UNREACHABLE: %s", p.Metrics, oneLine(p.Error, 120))
	}
	peer := dash(p.PeerUp, func(b bool) string {
		if b {
			return "up"
		}
		return "DOWN"
	})
	cache := dash(p.CacheBytes, func(b float64) string { return units.FormatSize(int64(b)) })
	if p.CacheCapacity != nil && *p.CacheCapacity > 0 {
		cache += " of " + units.FormatSize(int64(*p.CacheCapacity))
	}
	if p.CacheHitRatio != nil {
		cache += fmt.Sprintf(", %.0f%% hits", 100**p.CacheHitRatio)
	}
	return fmt.Sprintf("%s  up  peer %s  rtt %s  wan %s  logical %s  reduction %s  cache %s", p.Metrics, peer,
		dash(p.RTTSeconds, func(s float64) string { return fmt.Sprintf("%.1fms", s*1000) }),
		dash(p.WANRate, fmtRate), dash(p.LogicalRate, fmtRate),
		dash(p.Reduction, func(r float64) string { return fmt.Sprintf("%.1fx", r) }), cache)
}

// oneLine shortens s to one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

// srcDocFromMetrics reads the source's volumes, pauses and link from its
// /metrics (when its control token is not at hand).
func srcDocFromMetrics(s *scrape) srcDoc {
	var doc srcDoc
	vols := map[string]*srcVolDoc{}
	vol := func(sr series) *srcVolDoc {
		name := sr.labels["volume"]
		v, ok := vols[name]
		if !ok {
			v = &srcVolDoc{Name: name, State: aimsrc.StateNormal}
			vols[name] = v
		}
		return v
	}
	for _, sr := range s.fam[metrics.SrcData] {
		vol(sr).SrcDataBytes = int64(sr.value)
	}
	for _, sr := range s.fam[metrics.SrcFilesWaiting] {
		vol(sr).FilesWaiting = int64(sr.value)
	}
	for _, sr := range s.fam[metrics.SrcState] {
		if sr.value == 1 {
			vol(sr).State = sr.labels["state"]
		}
	}
	for _, sr := range s.fam[metrics.SrcPaused] {
		if sr.value == 1 {
			vol(sr).PausedBy = "paused"
			doc.Paused.Volumes = append(doc.Paused.Volumes, sr.labels["volume"])
		}
	}
	if up, ok := s.sum(metrics.SrcLinkUp, nil); ok {
		l := push.LinkState{State: push.LinkUp}
		if down, _ := s.sum(metrics.SrcLinkDownSeconds, nil); up == 0 && down > 0 {
			l = push.LinkState{State: push.LinkDown, Since: s.at.Add(-time.Duration(down * float64(time.Second))),
				Error: "see src status or the source's log"}
		}
		doc.Link = &l
	}
	for _, v := range vols {
		doc.Volumes = append(doc.Volumes, *v)
	}
	slices.SortFunc(doc.Volumes, func(a, b srcVolDoc) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(doc.Paused.Volumes)
	return doc
}
