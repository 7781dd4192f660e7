// Package e2e is the end-to-end suite: it builds the real aimwan binary once
// (TestMain) and runs real processes on loopback, the way an operator would.
//
// Glossary
//
//   - harness: the shared process harness, internal/testkit/procs (also
//     used by `aimwan bench` and `aimwan sim chaos`), through testkit and the
//     thin helpers of harness_test.go: StartProc (a daemon with its log in
//     the test's temp folder), Proc.Kill (SIGKILL), Proc.Restart,
//     testkit.FreeAddr (a free loopback port, TCP and UDP), WaitPort,
//     Eventually (poll with a deadline), Aimwan (a one-shot subcommand),
//     NeedBins (skip when an external tool is absent), Scrape (read a
//     daemon's Prometheus metrics).
//   - node helpers: StartSrc / StartDst start a source or destination node
//     with free ports and temp folders and return their addresses.
//   - image: a small generated raw image (a few MiB: data, zero runs, holes)
//     written through the source node's NBD export with qemu-img.
//   - guide: docs/install.md, whose blocks marked `sh {guide site=...}`
//     TestInstallGuide runs in order at two sites (a folder per host's /),
//     with the substitutions listed at the end of that page.
//
// Tests need qemu-img, qemu-io/nbdcopy for the NBD paths and skip with a
// message when they are absent (CI installs them).
package e2e
