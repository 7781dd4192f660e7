// Package reports reads what the aimwan daemons recorded and presents it.
// The daemons record with package internal/metrics (names, serving,
// Recorder); this package only reads recordings back and draws them.
//
// Glossary:
//
//   - metric, key, sample, recording: as in internal/metrics (a recording is
//     <dir>/<daemon>.jsonl, one metrics.Sample a line), read back by
//     ReadRecording / LoadDir.
//   - phase: a named interval of a run (e.g. "passthrough", "optimize"),
//     read from phases.json and drawn as a boundary on every chart.
//   - report: a self-contained HTML page (inline SVG charts, no external
//     resources) or its Markdown / JSON equivalent, built from recordings,
//     phases and a bench's result.json.
package reports
