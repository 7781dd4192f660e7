package procs

import "syscall"

// sysProcAttr makes a daemon die with the harness, even when the harness is
// killed.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
