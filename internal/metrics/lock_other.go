//go:build !unix

package metrics

import "os"

// lockRecording is a no-op where flock is not available.
func lockRecording(*os.File) error { return nil }
