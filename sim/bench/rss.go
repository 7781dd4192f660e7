package bench

// recordPeakRSS stores each running daemon's peak resident set size in
// into, under its name, with suffix added for the proxies (e.g.
// "/optimize": they restart at the switch, so each phase has its own).
// Read just before the daemons stop, it is the peak of their whole run.
func (c *chain) recordPeakRSS(into map[string]int64, proxySuffix string) {
	for _, p := range c.procs.Procs() {
		if p.Exited() {
			continue
		}
		rss, err := p.PeakRSS()
		if err != nil {
			c.cfg.Logger.Warn("bench: peak RSS", "daemon", p.Name, "err", err)
			continue
		}
		name := p.Name
		if p == c.proxySrc || p == c.proxyDst {
			name += proxySuffix
		}
		into[name] = rss
	}
}
