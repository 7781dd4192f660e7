// Package reports records and presents what the aimwan daemons measure.
//
// Glossary:
//
//   - metric: a Prometheus time series a daemon exports, named
//     aimwan_<part>_<what>_<unit>[_total] (see docs/metrics.md).
//   - key: one series inside a sample, written as the Prometheus text format
//     writes it: name{label="value",...} with labels sorted by name, or just
//     name when it has no labels.
//   - sample: the values of every counter and gauge of one daemon at one
//     instant (histograms and summaries contribute their _sum and _count).
//   - recording: the samples of one daemon, one a second, as JSONL in
//     <dir>/<daemon>.jsonl, written by a Recorder and read back by
//     ReadRecording / LoadDir.
//   - phase: a named interval of a run (e.g. "passthrough", "optimize"),
//     read from phases.json and drawn as a boundary on every chart.
//   - report: a self-contained HTML page (inline SVG charts, no external
//     resources) or its Markdown / JSON equivalent, built from recordings,
//     phases and a bench's result.json.
package reports
