package main

import (
	"context"
	"fmt"
	"github.com/streamwal/recovery/internal/heapsample"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/walerr"
)

const benchUsage = `Usage: walrec bench FILE [--parallelism 1,2,4,8] [--runs 3] [--max-record-size N] [--json]

Recovers FILE read-only (O_RDONLY, no lock, no write; records are verified and discarded)
at each parallelism given and prints, for each, the best wall time of --runs runs, MB/s
(10^6 bytes of file per second), the buffer pool's peak (recovery's own accounting) and the
heap's peak growth (sampled: runtime/metrics every millisecond and after every batch, after
a collection). The first row is a plain sequential read of the file into one reused 1 MiB
buffer, no work at all: the machine's limit, and a warm-up of the page cache.

With --json it prints JSON lines, one per setting.

Exit status: 0 measured (a tail recovery would cut is reported, not an error), 2 refused,
3 an I/O or usage error.
`

type benchRow struct {
	Setting      string  `json:"setting"`
	Parallelism  int     `json:"parallelism"` // 0 for the raw read
	Seconds      float64 `json:"seconds"`
	MBps         float64 `json:"mb_per_s"`
	PeakBuffered int64   `json:"peak_buffered"`
	HeapGrowth   int64   `json:"heap_growth"`
	FileSize     int64   `json:"file_size"`
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench")
	var rf recoveryFlags
	rf.register(fs, false, -1)
	pars := fs.String("parallelism", "1,2,4,8", "comma-separated parallelism settings (0: one per CPU)")
	runs := fs.Int("runs", 3, "runs per setting; the best time is reported")
	pos, code, ok := parseFlags(fs, benchUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	var settings []int
	for _, s := range strings.Split(*pars, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "walrec bench: bad --parallelism %q (want a list like 1,2,4,8)\n", *pars)
			return exitError
		}
		settings = append(settings, n)
	}
	if *runs < 1 {
		fmt.Fprintf(stderr, "walrec bench: --runs %d < 1\n", *runs)
		return exitError
	}
	path := pos[0]
	f, err := openInput(path)
	if err != nil {
		r := openErrorReport(path, recovery.Tolerate, err)
		errorLine(stderr, "bench", &r)
		return r.Exit
	}
	defer f.Close()
	size := f.Size()

	var rows []benchRow
	var last recovery.Result
	for _, par := range settings {
		row := benchRow{Setting: fmt.Sprintf("parallelism %d", par), Parallelism: par, FileSize: size}
		if par == 0 {
			row.Parallelism = runtime.GOMAXPROCS(0)
			row.Setting = fmt.Sprintf("parallelism 0 (%d)", row.Parallelism)
		}
		for range *runs {
			p := newProgress(stderr, row.Setting)
			h := heapsample.Start(time.Millisecond)
			start := time.Now()
			res, err := recovery.Recover(ctx, f, nil, recovery.ReadOnly(), recovery.WithParallelism(par),
				recovery.WithMaxRecordSize(int64(rf.maxRecord)),
				recovery.WithProgress(both(p.callback(), func(int64, int64) { h.Sample() })))
			el := time.Since(start)
			growth := h.Growth()
			p.done()
			if err != nil {
				r := newReport(path, recovery.Tolerate, res, err)
				return emit(stdout, stderr, "bench", &r, nil, rf.json)
			}
			last = res
			row.best(el)
			row.PeakBuffered = max(row.PeakBuffered, res.PeakBuffered)
			row.HeapGrowth = max(row.HeapGrowth, growth)
		}
		rows = append(rows, row)
	}

	// The raw read: the physical limit on this machine. After the recovery runs, so that a
	// file recovery refuses is reported without first reading all of it.
	raw := benchRow{Setting: "raw read", FileSize: size}
	for range *runs {
		h := heapsample.Start(time.Millisecond)
		start := time.Now()
		buf := make([]byte, 1<<20)
		for off := int64(0); off < size; off += int64(len(buf)) {
			if err := ctx.Err(); err != nil { // Ctrl-C: a 5 GB file takes a while
				h.Growth()
				r := newReport(path, recovery.Tolerate, recovery.Result{Size: size}, walerr.Wrap(walerr.Canceled, off, err, "bench stopped"))
				return emit(stdout, stderr, "bench", &r, nil, rf.json)
			}
			n := min(int64(len(buf)), size-off)
			if err := walerr.ReadFull(f, buf[:n], off); err != nil {
				h.Growth()
				r := newReport(path, recovery.Tolerate, recovery.Result{Size: size}, err)
				return emit(stdout, stderr, "bench", &r, nil, rf.json)
			}
		}
		raw.best(time.Since(start))
		raw.PeakBuffered = int64(len(buf))
		raw.HeapGrowth = max(raw.HeapGrowth, h.Growth())
	}
	rows = append([]benchRow{raw}, rows...)

	if rf.json {
		for _, r := range rows {
			writeJSON(stdout, r)
		}
		return exitOK
	}
	layout := last.Layout.String()
	if last.Size == 0 {
		layout = "empty"
	}
	fmt.Fprintf(stdout, "%s: %s log, %s, %s records, %s ops; best of %d runs, read-only\n",
		path, layout, mib(size), group(last.Records), group(last.Ops), *runs)
	if t := last.Truncation; t != nil {
		fmt.Fprintf(stdout, "(recovery would cut the last %d bytes at offset %d: %s)\n", t.Bytes, t.Offset, t.Reason)
	}
	fmt.Fprintf(stdout, "%-22s %9s %9s %12s %12s\n", "setting", "seconds", "MB/s", "pool peak", "heap growth")
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-22s %9.3f %9.0f %12s %12s\n", r.Setting, r.Seconds, r.MBps, mib(r.PeakBuffered), mib(r.HeapGrowth))
	}
	return exitOK
}

// best keeps the fastest run.
func (r *benchRow) best(d time.Duration) {
	s := d.Seconds()
	if r.Seconds == 0 || s < r.Seconds {
		r.Seconds = s
		if s > 0 {
			r.MBps = float64(r.FileSize) / 1e6 / s
		}
	}
}
