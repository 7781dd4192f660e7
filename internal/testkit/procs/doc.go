// Package procs starts the aimwan chain as real processes, the way an
// operator runs it: one aimwan binary (Build), daemons (src, the proxies, the
// link simulator, dst) on free loopback ports (FreePorts), each with its log
// file, started in order and waited for until they listen (Chain.Start,
// Proc.Start), stopped in reverse order (Chain.Stop), and their logs collected
// when something goes wrong (Chain.Tails). It is the one process harness of
// the end-to-end suite (e2e), `aimwan bench` (sim/bench) and `aimwan sim
// chaos` (sim/chaos).
//
// Glossary:
//
//   - proc (Proc): one aimwan process and its runs; every run appends its
//     output to the proc's log, after a "=== time run N: aimwan args" line.
//   - ready addresses: TCP addresses a proc accepts connections on once it is
//     up; Start waits for them and fails at once when the process exits first
//     (ErrExited).
//   - crash: a run that ended without the harness asking (Proc.Crashed).
//   - freeze: SIGSTOP, a process that holds its sockets and answers nothing.
//   - peak RSS: the high-water mark of a run's resident memory (VmHWM of
//     /proc/PID/status, Proc.PeakRSS); the bench reports it per daemon.
//
// Unlike its parent package testkit, procs does not import testing: the bench
// and the chaos harness are commands of the shipped binary.
package procs
