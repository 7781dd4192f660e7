//go:build unix

package metrics

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockRecording takes an exclusive advisory lock on an open recording, so two
// recorders (two daemons given the same name) cannot interleave their lines.
func lockRecording(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%w: %s", ErrRecordingInUse, f.Name())
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}
