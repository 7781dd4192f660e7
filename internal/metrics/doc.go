// Package metrics is the one home of what every aimwan daemon measures and how:
// the metric names (names.go), serving a registry at /metrics on a loopback
// address (ServeMetrics, and ServeHTTP for the daemons' other small endpoints),
// and recording it as JSONL once a second (Recorder). Package reports reads
// the recordings back and draws them.
//
// Glossary:
//
//   - metric: a Prometheus time series a daemon exports, named
//     aimwan_<part>_<what>_<unit>[_total] (see docs/metrics.md). Its name is a
//     constant here (SrcData, TimeLatency, ProxyWire...), used both by the
//     daemon that registers it and by every reader.
//   - registry: one prometheus.Registry per daemon, never the global one.
//   - key: one series inside a sample, written as the Prometheus text format
//     writes it: name{label="value",...} with labels sorted by name, or just
//     name when it has no labels (FormatKey, ParseKey).
//   - sample: the values of every counter and gauge of one daemon at one
//     instant (histograms and summaries contribute their _sum and _count).
//   - recording: the samples of one daemon, one a second, as JSONL in
//     <dir>/<daemon>.jsonl, appended by a Recorder (the format is in
//     docs/metrics.md).
package metrics
