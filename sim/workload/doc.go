// Package workload generates the disk images that experiments replicate: a
// template that looks like an installed operating-system disk and clones of
// it that differ the way VMs created from one template do. Everything is a
// pure function of a seed, so an image of any size is reproducible, readable
// at any offset (io.ReaderAt) and generated in parallel.
//
// Glossary:
//
//   - block: 4 KiB, the unit of layout and of change (BlockSize).
//   - extent: a run of consecutive blocks holding one file (or free space),
//     as a filesystem allocates them.
//   - kind: what an extent holds: prose text (docs), config text, logs,
//     binaries (code, tables, symbol strings), packed data (already
//     compressed, incompressible), filesystem metadata (inode tables), free
//     space (zeros). The mix of kinds is calibrated against a real ext4
//     image of Debian packages (docs/workload.md).
//   - used part: the blocks that are not free space; compressibility figures
//     are given on it, as a filesystem-aware tool would see it.
//   - template: the image clones start from (Template).
//   - clone: the template plus a few percent of blocks rewritten with
//     content of the clone's own seed: identity files, logs, a page file,
//     package updates and new data (Clone, Image.Changed).
package workload
