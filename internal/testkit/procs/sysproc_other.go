//go:build !linux

package procs

import "syscall"

// sysProcAttr: without Pdeathsig, daemons outlive a killed harness.
func sysProcAttr() *syscall.SysProcAttr { return nil }
