package aimsrc

// space is the source buffer's accounting against the buffer limit.
type space struct {
	limit int64 // 0: no limit
	vols  []*volume
}

// used is the bytes of journal files on disk for all volumes (the open files
// estimated).
func (s *space) used() int64 {
	var n int64
	for _, v := range s.vols {
		n += v.srcData()
	}
	return n
}

// fits reports whether cost more bytes stay within the limit.
func (s *space) fits(cost int64) bool {
	return s.limit == 0 || s.used()+cost <= s.limit
}

// roomy reports whether the buffer is under its low-water mark (3/4 of the
// limit): background journaling (resync, initialize) proceeds only then, so
// live writes keep headroom and do not flap into pull-ahead.
func (s *space) roomy() bool {
	return s.limit == 0 || s.used() <= s.limit/4*3
}

// kick wakes every volume's resync loop: space was freed.
func (s *space) kick() {
	for _, v := range s.vols {
		select {
		case v.spaceKick <- struct{}{}:
		default:
		}
	}
}
