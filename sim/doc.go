// Package sim holds the experiment tooling of aimwan: everything needed to
// reproduce the seed experiment and to size a line without real sites.
//
// Glossary:
//
//   - workload: the disk images replicated in an experiment, a template (an
//     installed OS disk) and clones of it (sim/workload).
//   - link: the WAN between the two proxies, simulated by a userspace relay
//     with a rate, a delay, a bottleneck queue, loss, cross traffic, outages
//     and a backup line (sim/link).
//   - sizing study: a virtual-time model of one or more volumes writing into
//     a source buffer that drains over a line (sim/sizing).
//   - bench: the seed experiment end to end (src, proxies, link, dst).
package sim
