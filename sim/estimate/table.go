package estimate

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// mb formats bytes in MB (10^6), as the bench's tables do.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// PrintTable writes the estimate per image (what each adds to the ones
// before it) and in all.
func (r *Result) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "IMAGE\tBYTES\tZERO RUNS\tCHUNKS\tNEW CHUNKS\tNEW BYTES\tADDS (COMPRESSED)\t")
	for _, im := range r.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", im.Name, mb(im.Bytes), mb(im.ZeroBytes), im.Chunks, im.NewChunks,
			mb(im.NewBytes), mb(im.NewCompressed))
	}
	fmt.Fprintf(tw, "all\t%s\t%s\t%d\t%d\t%s\t%s\t\n", mb(r.Bytes), mb(r.ZeroBytes), r.Chunks, r.UniqueChunks,
		mb(r.UniqueBytes), mb(r.EstimateBytes))
	tw.Flush()
	fmt.Fprintf(w, "offline estimate: %s for %s (%.1fx): unique chunks %s, each compressed alone\n",
		mb(r.EstimateBytes), mb(r.Bytes), r.Reduction, mb(r.UniqueBytes))
	fmt.Fprintf(w, "chunks: %s\ncompressor: %s\nread at %.0f MB/s (%.1f s)\n", r.Params, r.Compressor, r.MBps, r.ElapsedS)
}
