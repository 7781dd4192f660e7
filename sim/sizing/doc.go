// Package sizing is a virtual-time model of replication over a WAN line, for
// sizing studies: days of writes and transfers computed in a fraction of a
// second, answering "how big a buffer, what line, which schedule for an RPO
// of X".
//
// Glossary:
//
//   - change profile: how many bytes a volume writes per hour of the day
//     (weekdays; a factor for weekends), plus one-off bursts (a clone, an
//     initialize).
//   - data reduction: logical bytes / wire bytes that the proxies achieve
//     (dedupe and compression); 1 without proxies. Given, or taken from a
//     bench result.json (logical_bytes / wire_bytes).
//   - capacity: what the line carries in a step: min(line rate, schedule cap)
//     minus cross traffic, in wire bytes; times the reduction in logical
//     bytes.
//   - Src Data (backlog): bytes written at the source and not yet
//     replicated, per volume; the source buffer holds it.
//   - Time Latency: how far the destination lags: now minus the source time
//     of the oldest byte not yet replicated (0 when caught up).
//   - overflow: the backlog exceeded the buffer; the excess is counted (the
//     source would fall back to a dirty bitmap and resync).
//   - catch-up time: from the peak backlog until the backlog is empty again.
//   - sweep: the model run over several line rates and schedules, to find
//     the smallest line that keeps Time Latency within an RPO.
//   - fluid model: bytes flow continuously, oldest first, shared equally by
//     the volumes; right for days and weeks (the default).
//   - file-granular model: the chain's mechanics over minutes (Model.FileSize
//     set): journal files sealed by size or age, a window of files offered
//     per volume, sent one after the other by the proxy, acknowledged whole;
//     restarts lose the files in flight (files.go).
//   - validation: the model run on a measured bench run's scenario (line,
//     cross traffic, ingest profile, reduction per phase, restarts) and its
//     peak Src Data and final Time Latency compared with the measured ones
//     (FromBench).
//   - page: the sizing report (tables and curves) handed to reports.WritePage
//     (Report.Page, Validation.Page).
package sizing
