//go:build race

package e2e

// raceBuild: the e2e tests run under the race detector, so TestMain builds
// the daemons with -race too and every Proc's log is checked for reports.
const raceBuild = true
