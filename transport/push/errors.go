package push

import (
	"errors"
	"fmt"
)

// Code is the wire form of an error in NACK frames. Codes are part of the
// protocol: never renumber them.
type Code uint16

// Wire codes. CodeOK is never sent; it is what CodeOf returns for nil.
const (
	CodeOK            Code = 0
	CodeInternal      Code = 1  // any error without a more specific code
	CodeDuplicate     Code = 2  // already stored durably (normally turned into ACK)
	CodeBufferFull    Code = 3  // receiver has no room now; retry later
	CodeUnknownVolume Code = 4  // receiver does not serve this volume
	CodeBadOffer      Code = 5  // offer or data violates the protocol or limits
	CodeUnavailable   Code = 6  // receiver (or a hop beyond it) cannot take files now
	CodeChecksum      Code = 7  // received bytes do not match the offered SHA-256
	CodeVersion       Code = 8  // protocol version not supported
	CodeProtocol      Code = 9  // malformed or unexpected frame; the connection ends
	CodeCanceled      Code = 10 // the sender gave up on the file
	CodeConflict      Code = 11 // the file conflicts with what the receiver replicates; not stored, not acked
)

// Sentinel errors. Errors from the peer arrive as *RemoteError, which
// satisfies errors.Is with the sentinel of its code.
var (
	ErrInternal      = errors.New("push: internal error")
	ErrDuplicate     = errors.New("push: duplicate file (already stored)")
	ErrBufferFull    = errors.New("push: buffer full")
	ErrUnknownVolume = errors.New("push: unknown volume")
	ErrBadOffer      = errors.New("push: bad offer")
	ErrUnavailable   = errors.New("push: unavailable")
	ErrChecksum      = errors.New("push: checksum mismatch")
	ErrVersion       = errors.New("push: unsupported protocol version")
	ErrProtocol      = errors.New("push: protocol violation")
	ErrCanceled      = errors.New("push: canceled by sender")
	// ErrConflict refuses a file that does not belong where the receiver
	// is: of another journal stream than the volume replicates, the same
	// file number as one held or destaged but other contents, or records
	// that do not follow. The sender keeps the file; an operator acts (the
	// message says how), resending it unchanged does not help.
	ErrConflict = errors.New("push: file conflicts with what the receiver replicates")
)

// ErrStalled is the NACK of a file that made no progress (no DATA) for the
// receiver's progress timeout. It is a bad offer on the wire (CodeBadOffer):
// the sender offers the file again, resuming where it stopped.
var ErrStalled = fmt.Errorf("%w: stalled", ErrBadOffer)

var codeErrs = []struct {
	code Code
	err  error
}{
	{CodeDuplicate, ErrDuplicate},
	{CodeBufferFull, ErrBufferFull},
	{CodeUnknownVolume, ErrUnknownVolume},
	{CodeBadOffer, ErrBadOffer},
	{CodeUnavailable, ErrUnavailable},
	{CodeChecksum, ErrChecksum},
	{CodeVersion, ErrVersion},
	{CodeProtocol, ErrProtocol},
	{CodeCanceled, ErrCanceled},
	{CodeConflict, ErrConflict},
	{CodeInternal, ErrInternal},
}

// CodeOf maps an error to its wire code: CodeOK for nil, the code of the
// first matching sentinel (errors.Is, so wrapped errors and *RemoteError
// work), CodeInternal for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	for _, ce := range codeErrs {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return CodeInternal
}

// ErrorOf maps a wire code and message back to an error: nil for CodeOK,
// otherwise a *RemoteError. Unknown codes behave as CodeInternal in errors.Is
// but keep their number.
func ErrorOf(c Code, msg string) error {
	if c == CodeOK {
		return nil
	}
	return &RemoteError{Code: c, Msg: msg}
}

// sentinel returns the sentinel error of a code (ErrInternal when unknown).
func (c Code) sentinel() error {
	for _, ce := range codeErrs {
		if ce.code == c {
			return ce.err
		}
	}
	return ErrInternal
}

// String names the code as in docs/push-protocol.md.
func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeInternal:
		return "internal"
	case CodeDuplicate:
		return "duplicate"
	case CodeBufferFull:
		return "buffer-full"
	case CodeUnknownVolume:
		return "unknown-volume"
	case CodeBadOffer:
		return "bad-offer"
	case CodeUnavailable:
		return "unavailable"
	case CodeChecksum:
		return "checksum"
	case CodeVersion:
		return "version"
	case CodeProtocol:
		return "protocol"
	case CodeCanceled:
		return "canceled"
	case CodeConflict:
		return "conflict"
	}
	return fmt.Sprintf("code-%d", uint16(c))
}

// RemoteError is an error reported by the peer in a NACK frame.
type RemoteError struct {
	Code Code   // wire code
	Msg  string // peer's message, for humans only
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("remote: %s", e.Code)
	}
	return fmt.Sprintf("remote: %s: %s", e.Code, e.Msg)
}

// Unwrap returns the sentinel of the code, so errors.Is(err, ErrBufferFull)
// holds for a remote buffer-full NACK.
func (e *RemoteError) Unwrap() error { return e.Code.sentinel() }
