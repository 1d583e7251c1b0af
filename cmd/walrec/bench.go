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
                    [--quiet] [--progress MODE]

Recovers FILE read-only (O_RDONLY, no lock, no write; records are verified and discarded)
at each parallelism given and prints, for each, the best wall time of --runs runs, file MB/s
(10^6 bytes of the file per second), payload MB/s (10^6 bytes of record payload per second,
headers left out: the unit of docs/benchmarks.md), the buffer pool's peak (recovery's own
accounting) and the Go heap's peak growth (sampled: runtime/metrics every millisecond and after
every batch, after a collection; on Linux the pool's buffers of 1 MiB and more are outside the
Go heap, so they show in the pool column only). The runs go in rounds, every setting once per
round, so that a slow patch of a shared machine spreads over all settings.

The first row is a plain sequential read of the file into one reused 1 MiB buffer, no work
at all: the machine's limit. It is shown first but measured last, after the recovery runs,
so that a file recovery refuses is reported without first reading all of it; the first
recovery run therefore reads a cold page cache, which the best of --runs runs leaves out
(use --runs 2 or more on a file that is not cached).

An empty file has nothing to measure: bench says so and prints no table.

With --json it prints one "row" line per setting (the raw read first), then the "report"
line of "walrec verify --json" for the file (its outcome; a tail is reported there). A file
it cannot bench gets the report alone.

Exit status: 0 measured (a tail recovery would cut is reported, not an error: exit 0 here),
2 refused, 3 an I/O or usage error, 128+N stopped by signal N (nothing is written).

` + exitCodesHelp

type benchRow struct {
	jsonHead
	File         string  `json:"file"`
	FileHex      *string `json:"file_hex"`
	Setting      string  `json:"setting"`
	Parallelism  int     `json:"parallelism"` // 0 for the raw read
	Seconds      float64 `json:"seconds"`
	MBps         float64 `json:"mb_per_s"`         // file bytes
	PayloadMBps  float64 `json:"payload_mb_per_s"` // record payload bytes (0 for the raw read)
	payload      int64
	PeakBuffered int64 `json:"peak_buffered"`
	HeapGrowth   int64 `json:"heap_growth"`
	FileSize     int64 `json:"file_size"`
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench")
	var rf recoveryFlags
	rf.register(fs, false, -1)
	pars := fs.String("parallelism", "1,2,4,8", "comma-separated parallelism settings (0: one per CPU)")
	runs := fs.Int("runs", 3, "runs per setting; the best time is reported")
	pos, code, ok := parseFlags(ctx, fs, benchUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	settings, ok := benchSettings(*pars)
	if !ok {
		fmt.Fprintf(stderr, "walrec bench: bad --parallelism %q (want a list like 1,2,4,8, each in [0, %d])\nrun \"walrec bench --help\" for usage\n", *pars, maxParallelism)
		return exitError
	}
	if *runs < 1 {
		fmt.Fprintf(stderr, "walrec bench: --runs %d < 1\nrun \"walrec bench --help\" for usage\n", *runs)
		return exitError
	}
	path := pos[0]
	f, err := openInput(path)
	if err != nil {
		r := openErrorReport(path, recovery.Tolerate, err)
		return emit(ctx, stdout, stderr, "bench", &r, nil, &rf, false)
	}
	defer f.Close()
	if f.Size() == 0 { // nothing to time: no rate of nothing
		r := newReport(path, recovery.Tolerate, recovery.Result{}, nil)
		r.readOnly = true
		if !rf.json && !rf.quiet {
			r.stop(ctx)
			w := &errWriter{w: stdout}
			fmt.Fprintf(w, "%s: empty file: nothing to measure\n", quoteName(path))
			if w.err != nil {
				return writeFailed(ctx, stderr, "bench", path, r.Exit, w.err, "")
			}
			return r.Exit
		}
		return emit(ctx, stdout, stderr, "bench", &r, nil, &rf, false)
	}
	b := &bencher{ctx: ctx, f: f, path: path, size: f.Size(), runs: *runs, rf: &rf, stderr: stderr}
	rows, last, fail := b.recovery(settings)
	if fail == nil {
		// The raw read: the physical limit on this machine. After the recovery runs, so that a
		// file recovery refuses is reported without first reading all of it.
		var raw benchRow
		raw, fail = b.rawRead()
		rows = append([]benchRow{raw}, rows...)
	}
	if fail != nil {
		r := newReport(path, recovery.Tolerate, fail.res, fail.err)
		r.readOnly = true
		return emit(ctx, stdout, stderr, "bench", &r, nil, &rf, false)
	}
	r := newReport(path, recovery.Tolerate, last, nil)
	r.readOnly = true
	r.Exit = exitOK // measured: a tail is reported, not a failure
	r.stop(ctx)
	if rf.quiet {
		return r.Exit
	}
	return writeBench(ctx, stdout, stderr, &r, rows, last, *runs, rf.json)
}

// benchSettings parses --parallelism.
func benchSettings(list string) ([]int, bool) {
	var settings []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > maxParallelism {
			return nil, false
		}
		settings = append(settings, n)
	}
	return settings, true
}

// bencher times recovery and a raw read of one file.
type bencher struct {
	ctx    context.Context
	f      inputFile
	path   string
	size   int64
	runs   int
	rf     *recoveryFlags
	stderr io.Writer
}

// benchFailure is what stopped a bench: the error and what recovery had measured.
type benchFailure struct {
	res recovery.Result
	err error
}

// recovery times a read-only recovery at each setting, in rounds: every setting once per
// round, so that a slow patch of a shared machine spreads over all settings instead of landing
// on one.
func (b *bencher) recovery(settings []int) ([]benchRow, recovery.Result, *benchFailure) {
	var rows []benchRow
	for _, par := range settings {
		row := benchRow{jsonHead: head("bench", "row"), File: b.path, FileHex: nameHex(&b.path), Setting: fmt.Sprintf("parallelism %d", par), Parallelism: par, FileSize: b.size}
		if par == 0 {
			row.Parallelism = runtime.GOMAXPROCS(0)
			row.Setting = fmt.Sprintf("parallelism 0 (%d)", row.Parallelism)
		}
		rows = append(rows, row)
	}
	var last recovery.Result
	for range b.runs {
		for i, par := range settings {
			row := &rows[i]
			p := b.rf.progress(b.stderr, row.Setting, b.path)
			h := heapsample.Start(time.Millisecond)
			start := time.Now()
			res, err := recovery.Recover(b.ctx, b.f, nil, recovery.ReadOnly(), recovery.WithParallelism(par),
				recovery.WithMaxRecordSize(int64(b.rf.maxRecord)),
				recovery.WithProgress(both(both(p.callback(), func(int64, int64) { h.Sample() }), pauseOnce(b.ctx, "bench"))))
			el := time.Since(start)
			growth := h.Growth()
			p.done()
			if err != nil {
				return nil, res, &benchFailure{res, err}
			}
			last = res
			row.payload = res.Bytes - res.Records*int64(res.Layout.HeaderSize())
			row.best(el)
			row.PeakBuffered = max(row.PeakBuffered, res.PeakBuffered)
			row.HeapGrowth = max(row.HeapGrowth, growth)
		}
	}
	return rows, last, nil
}

// rawRead times reading the file in 1 MiB reads, the physical limit on this machine.
func (b *bencher) rawRead() (benchRow, *benchFailure) {
	raw := benchRow{jsonHead: head("bench", "row"), File: b.path, FileHex: nameHex(&b.path), Setting: "raw read", FileSize: b.size}
	buf := make([]byte, 1<<20)
	for range b.runs {
		h := heapsample.Start(time.Millisecond)
		start := time.Now()
		for off := int64(0); off < b.size; off += int64(len(buf)) {
			if err := b.ctx.Err(); err != nil { // Ctrl-C: a 5 GB file takes a while
				h.Growth()
				return raw, &benchFailure{recovery.Result{Size: b.size}, walerr.Wrap(walerr.Canceled, off, err, "bench stopped")}
			}
			n := min(int64(len(buf)), b.size-off)
			if err := walerr.ReadFull(b.f, buf[:n], off); err != nil {
				h.Growth()
				return raw, &benchFailure{recovery.Result{Size: b.size}, err}
			}
		}
		raw.best(time.Since(start))
		raw.PeakBuffered = int64(len(buf))
		raw.HeapGrowth = max(raw.HeapGrowth, h.Growth())
	}
	return raw, nil
}

// writeBench prints the rows and the report: JSON lines, or a table.
func writeBench(ctx context.Context, stdout, stderr io.Writer, rep *report, rows []benchRow, last recovery.Result, runs int, asJSON bool) int {
	out := &errWriter{w: stdout}
	if asJSON {
		for _, r := range rows {
			writeJSON(out, r)
		}
		rep.prepareJSON("bench")
		writeJSON(out, rep)
		return benchDone(ctx, out, stderr, rep)
	}
	fmt.Fprintf(out, "%s: %s log, %s, %s records, %s ops; best of %d runs, read-only\n",
		quoteName(rep.File), last.Layout, bytesHuman(last.Size), group(last.Records), group(last.Ops), runs)
	if t := last.Truncation; t != nil {
		fmt.Fprintf(out, "(recovery would cut the last %d bytes at offset %d: %s)\n", t.Bytes, t.Offset, t.Reason)
	}
	fmt.Fprintf(out, "%-22s %9s %10s %13s %12s %12s\n", "setting", "seconds", "file MB/s", "payload MB/s", "pool peak", "heap growth")
	for _, r := range rows {
		payload := "-"
		if r.Parallelism > 0 {
			payload = fmt.Sprintf("%.0f", r.PayloadMBps)
		}
		fmt.Fprintf(out, "%-22s %9.3f %10.0f %13s %12s %12s\n", r.Setting, r.Seconds, r.MBps, payload, mib(r.PeakBuffered), mib(r.HeapGrowth))
	}
	if rep.Signal != nil {
		fmt.Fprintf(out, "(%s came once every run above was done: exit %d)\n", *rep.Signal, rep.Exit)
	}
	return benchDone(ctx, out, stderr, rep)
}

// benchDone is bench's status once its table is written: a table nobody can read is an error.
func benchDone(ctx context.Context, out *errWriter, stderr io.Writer, rep *report) int {
	if out.err != nil {
		return writeFailed(ctx, stderr, "bench", rep.File, rep.Exit, out.err, "")
	}
	return rep.Exit
}

// best keeps the fastest run.
func (r *benchRow) best(d time.Duration) {
	s := d.Seconds()
	if r.Seconds == 0 || s < r.Seconds {
		r.Seconds = s
		if s > 0 {
			r.MBps = float64(r.FileSize) / 1e6 / s
			r.PayloadMBps = float64(r.payload) / 1e6 / s
		}
	}
}
