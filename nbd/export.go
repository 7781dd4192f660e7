package nbd

import (
	"errors"
	"fmt"
	"sort"
	"syscall"
)

// Export is one exported volume. The server calls it only with requests
// inside [0, Size()) that fit its limits, never a write to a read-only export.
// Requests of one connection arrive one at a time; several connections may
// call the same Export concurrently.
type Export interface {
	// Size returns the export size in bytes (fixed while connected).
	Size() int64
	// ReadOnly reports whether writes, trims and zeroing are refused (EPERM).
	ReadOnly() bool
	// ReadAt fills p from offset off.
	ReadAt(p []byte, off int64) error
	// WriteAt writes p at off; fua: durable before it returns. p is only
	// valid during the call.
	WriteAt(p []byte, off int64, fua bool) error
	// WriteZeroes zeroes [off, off+length); noHole: the range must stay
	// allocated (NBD_CMD_FLAG_NO_HOLE); fua: durable before it returns.
	WriteZeroes(off, length int64, noHole, fua bool) error
	// Trim says [off, off+length) is no longer needed (NBD_CMD_TRIM); the
	// content afterwards is unspecified by NBD.
	Trim(off, length int64) error
	// Flush makes every completed write durable before it returns.
	Flush() error
}

// Exports finds exports by name.
type Exports interface {
	// Lookup returns the export of that name, or an error wrapping
	// ErrUnknownExport.
	Lookup(name string) (Export, error)
	// Names lists the export names (for NBD_OPT_LIST).
	Names() []string
}

// ErrUnknownExport is wrapped by Lookup errors for names not exported.
var ErrUnknownExport = errors.New("nbd: unknown export")

// Errno is an NBD error number an Export may return (wrapped or not) to
// choose the error the client sees; other errors map to EIO, or to EPERM /
// ENOSPC for the matching syscall errors.
type Errno uint32

// Errors an Export may return.
const (
	EPERM     Errno = errnoPerm
	EIO       Errno = errnoIO
	ENOMEM    Errno = errnoNoMem
	EINVAL    Errno = errnoInval
	ENOSPC    Errno = errnoNoSpc
	EOVERFLOW Errno = errnoOverflow
	ENOTSUP   Errno = errnoNotSup
	ESHUTDOWN Errno = errnoShutdown
)

func (e Errno) Error() string {
	switch e {
	case EPERM:
		return "nbd: EPERM (operation not permitted)"
	case EIO:
		return "nbd: EIO (input/output error)"
	case ENOMEM:
		return "nbd: ENOMEM (out of memory)"
	case EINVAL:
		return "nbd: EINVAL (invalid argument)"
	case ENOSPC:
		return "nbd: ENOSPC (no space left)"
	case EOVERFLOW:
		return "nbd: EOVERFLOW (value too large)"
	case ENOTSUP:
		return "nbd: ENOTSUP (not supported)"
	case ESHUTDOWN:
		return "nbd: ESHUTDOWN (server shutting down)"
	}
	return fmt.Sprintf("nbd: errno %d", uint32(e))
}

// errnoOf maps an Export error to the errno of the reply.
func errnoOf(err error) uint32 {
	var e Errno
	switch {
	case err == nil:
		return errnoOK
	case errors.As(err, &e):
		return uint32(e)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errnoNoSpc
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES):
		return errnoPerm
	case errors.Is(err, syscall.ENOMEM):
		return errnoNoMem
	}
	return errnoIO
}

// ExportMap is the simplest Exports: a fixed map from name to export.
type ExportMap map[string]Export

var _ Exports = ExportMap(nil)

// Lookup returns the export of that name.
func (m ExportMap) Lookup(name string) (Export, error) {
	if e, ok := m[name]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("export %q: %w", clip(name), ErrUnknownExport)
}

// Names lists the export names, sorted.
func (m ExportMap) Names() []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// clip shortens hostile strings for messages.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
