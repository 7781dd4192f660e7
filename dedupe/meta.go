package dedupe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/aimwan/aimwan/internal/durable"
)

// The meta file (store.meta) holds what a store is beyond its containers:
// its epoch, and
//   - for a chunk store, the passes of priming in this epoch (the mark) and
//     the container ranges the latest ones wrote, so a peer that learnt the
//     store up to an earlier mark is sent only what priming added;
//   - for a peer index, the peer store's capacity it mirrors and the peer's
//     mark it has learnt.
//
// Layout (version 3): magic "AIMS", version, flags, 2 zero bytes, epoch u64,
// capacity u64, mark u64, range count u8, 3 zero bytes, per range first and
// last container u32, CRC32C of everything before it. Version 2 (20 bytes:
// no capacity, mark or ranges) is read, and written when those are zero.
const (
	storeMetaVersion   = 3
	storeMetaV2        = 2
	metaFixedLen       = 36
	metaRangeLen       = 8
	maxPrimeRanges     = 32
	storeMetaV2Len     = 20
	storeMetaMaxLength = metaFixedLen + maxPrimeRanges*metaRangeLen + 4
)

var magicMeta = [4]byte{'A', 'I', 'M', 'S'}

// primeRange is the first and last container one pass of priming wrote.
type primeRange struct{ from, to uint32 }

// storeMeta is the content of the meta file.
type storeMeta struct {
	epoch uint64
	flags byte
	// capacity: a peer index's peer store capacity (0 = not told).
	capacity int64
	// mark: a chunk store's priming passes in this epoch; a peer index's
	// mark of the peer it has learnt.
	mark uint64
	// primes: the ranges of the latest priming passes (at most
	// maxPrimeRanges), the last one being pass number mark.
	primes []primeRange
}

func (m storeMeta) append(dst []byte) []byte {
	start := len(dst)
	if m.capacity == 0 && m.mark == 0 && len(m.primes) == 0 {
		// Nothing version 2 lacks: write version 2, which an older aimwan
		// still reads (it moves a store with an unknown meta aside).
		dst = append(dst, magicMeta[:]...)
		dst = append(dst, storeMetaV2, m.flags, 0, 0)
		dst = binary.BigEndian.AppendUint64(dst, m.epoch)
		return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	}
	dst = append(dst, magicMeta[:]...)
	dst = append(dst, storeMetaVersion, m.flags, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, m.epoch)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.capacity))
	dst = binary.BigEndian.AppendUint64(dst, m.mark)
	dst = append(dst, byte(len(m.primes)), 0, 0, 0)
	for _, r := range m.primes {
		dst = binary.BigEndian.AppendUint32(dst, r.from)
		dst = binary.BigEndian.AppendUint32(dst, r.to)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// parseMeta decodes a meta file. Every error wraps ErrCorrupt.
func parseMeta(b []byte) (storeMeta, error) {
	var m storeMeta
	if len(b) < storeMetaV2Len || len(b) > storeMetaMaxLength || [4]byte(b[:4]) != magicMeta {
		return m, fmt.Errorf("%w: not a chunk store meta file (%d bytes)", ErrCorrupt, len(b))
	}
	n := len(b) - 4
	if crc32.Checksum(b[:n], castagnoli) != binary.BigEndian.Uint32(b[n:]) {
		return m, fmt.Errorf("%w: chunk store meta checksum", ErrCorrupt)
	}
	m.flags = b[5]
	m.epoch = binary.BigEndian.Uint64(b[8:16])
	switch {
	case b[4] == storeMetaV2 && len(b) == storeMetaV2Len:
		return m, nil
	case b[4] != storeMetaVersion:
		return m, fmt.Errorf("%w: chunk store meta version %d, this aimwan reads %d", ErrCorrupt, b[4], storeMetaVersion)
	case len(b) < metaFixedLen+4:
		return m, fmt.Errorf("%w: chunk store meta of %d bytes", ErrCorrupt, len(b))
	}
	m.capacity = int64(binary.BigEndian.Uint64(b[16:24]))
	m.mark = binary.BigEndian.Uint64(b[24:32])
	nr := int(b[32])
	if nr > maxPrimeRanges || metaFixedLen+nr*metaRangeLen != n || uint64(nr) > m.mark || m.capacity < 0 || m.capacity > 1<<50 {
		return storeMeta{}, fmt.Errorf("%w: chunk store meta with %d prime ranges (mark %d, capacity %d) in %d bytes",
			ErrCorrupt, nr, m.mark, m.capacity, len(b))
	}
	for i := range nr {
		r := b[metaFixedLen+i*metaRangeLen:]
		pr := primeRange{from: binary.BigEndian.Uint32(r), to: binary.BigEndian.Uint32(r[4:])}
		if pr.from > pr.to || (i > 0 && pr.from < m.primes[i-1].to) {
			return storeMeta{}, fmt.Errorf("%w: chunk store meta prime range %d [%d,%d] out of order", ErrCorrupt, i,
				pr.from, pr.to)
		}
		m.primes = append(m.primes, pr)
	}
	return m, nil
}

// readMeta reads the store's meta file. ok is false when there is none.
func readMeta(path string, dataless bool) (m storeMeta, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	if m, err = parseMeta(b); err != nil {
		return m, false, fmt.Errorf("%s: %w", path, err)
	}
	if (m.flags&storeFlagsDataless != 0) != dataless {
		return m, false, fmt.Errorf("%s: %w: a chunk store and a peer index swapped folders", path, ErrCorrupt)
	}
	return m, true, nil
}

// metaLocked is the store's meta as it stands.
func (s *Store) metaLocked() storeMeta {
	m := storeMeta{epoch: s.epoch, capacity: s.peerCap, mark: s.mark, primes: s.primes}
	if s.cfg.dataless {
		m.flags = storeFlagsDataless
	}
	return m
}

// writeMeta persists the store's meta (no-op in memory).
func (s *Store) writeMeta(m storeMeta) error {
	if s.cfg.Dir == "" {
		return nil
	}
	return durable.WriteFile(filepath.Join(s.cfg.Dir, storeMetaFile), m.append(nil), 0o644)
}

// persistMeta writes the meta as it stands, logging a failure (the store
// goes on: at worst a peer learns it again).
func (s *Store) persistMeta() {
	s.mu.Lock()
	m := s.metaLocked()
	s.mu.Unlock()
	if err := s.writeMeta(m); err != nil {
		s.cfg.Logger.Warn("chunk store: cannot persist its meta", "err", err)
	}
}

// Epoch identifies the store's content generation: a new random value
// whenever the store starts cold or is wiped. A peer that sees the epoch
// change drops its index of what this store holds.
func (s *Store) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// setEpoch records a new epoch (persisted); a new epoch has no priming.
func (s *Store) setEpoch(epoch uint64) {
	s.mu.Lock()
	if s.epoch != epoch {
		s.mark, s.primes = 0, nil
	}
	s.epoch = epoch
	s.mu.Unlock()
	s.persistMeta()
}

// beginPrime notes where a pass of priming starts: the container its first
// chunk goes to.
func (s *Store) beginPrime() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open != nil {
		return s.open.id
	}
	return s.next
}

// endPrime records a pass of priming that wrote containers from..(the open
// or last one): the mark goes up, and a peer learns those containers at
// its next handshake (Store.HeldFor).
func (s *Store) endPrime(from uint32) {
	s.mu.Lock()
	to := s.next - 1
	if s.open != nil {
		to = s.open.id
	}
	if to >= from {
		s.mark++
		s.primes = append(s.primes, primeRange{from: from, to: to})
		if len(s.primes) > maxPrimeRanges {
			s.primes = append([]primeRange(nil), s.primes[len(s.primes)-maxPrimeRanges:]...)
		}
	}
	s.mu.Unlock()
	s.persistMeta()
}
