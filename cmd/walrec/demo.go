package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/streamwal/recovery/internal/heapsample"
	shop "github.com/streamwal/recovery/internal/workload"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
)

const demoUsage = `Usage: walrec demo

Shows what this project does, in one command, on a built-in default:

  1. builds a sample database (256 MiB of realistic transactions: orders, profile updates,
     sessions, bulk imports; sets and deletes) in a new temporary directory;
  2. simulates a crash in the middle of the last append, leaving a torn record;
  3. reopens it read-only and prints a table: recovery alone (records verified and
     discarded) on a quarter of the log and on all of it, sequentially and in parallel,
     then the database's open (which also rebuilds the store); for each: bytes of log read,
     records, seconds, MB/s (10^6 bytes of log per second), the read buffers recovery held
     at its peak (the buffer pool's own count), the heap's peak growth during the open
     (sampled every millisecond) and, for the database, the heap it keeps once open;
  4. opens it for writing, which cuts the torn record (keeping its bytes in a sidecar
     file), commits once more and reopens it cleanly;
  5. removes the temporary directory and everything in it.

It takes a few seconds and needs about 300 MiB of free space in the temporary directory
($TMPDIR). The sample is written with format.AppendRecord (the encoder the database's
commits use), not through db.Update, whose fsync per commit makes the same build take
tens of seconds (about 23 s on a 2-core VM). The database then commits through db.Update
after the repair.

Flags: --no-progress (never draw a progress bar; one is drawn on stderr only when it is a
terminal).

Here: 0 done, 3 an error or no room for the sample, 128+N stopped by signal N (141 when the
reader of its output went away, as in "walrec demo | head -3"). The temporary directory is
removed in every case.

` + exitCodesHelp

const demoDefaultSize = 256 << 20

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo")
	size := sizeFlag(demoDefaultSize)
	fs.Var(&size, "demo-size", "size of the sample database")
	tmp := fs.String("tmpdir", "", "where to make the temporary directory (default $TMPDIR)")
	seed := fs.Uint64("demo-seed", 1, "workload seed")
	var of outFlags
	of.registerProgress(fs)
	_, code, ok := parseFlags(ctx, fs, demoUsage, args, 0, stdout, stderr)
	if !ok {
		return code
	}
	if err := needSpace(dirOr(*tmp), int64(size)+int64(size)/8+(4<<20), "the demo"); err != nil {
		fmt.Fprintf(stderr, "walrec demo: %v; nothing was written (set TMPDIR to a roomier place)\n", err)
		return exitError
	}
	dir, err := os.MkdirTemp(*tmp, "walrec-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "walrec demo: %v\n", err)
		return exitError
	}
	// Whatever happens from here on (an error, Ctrl-C, SIGTERM, SIGHUP, a closed pipe on
	// stdout: all of them end ctx or fail a write, and runDemo returns), the directory goes.
	out := &errWriter{w: stdout}
	err = runDemo(ctx, dir, int64(size), *seed, out, stderr, &of)
	if rerr := os.RemoveAll(dir); rerr != nil {
		fmt.Fprintf(stderr, "walrec demo: removing %s: %v\n", quoteName(dir), rerr)
		return exitError
	}
	if err == nil {
		err = out.err
	}
	if err == nil {
		fmt.Fprintf(out, "  cleanup   removed %s\n", quoteName(dir))
		err = out.err
	}
	if err != nil {
		code := exitError
		if ctx.Err() != nil {
			err, code = errors.New("stopped"), stopCode(ctx)
			if s := stopped(ctx); s != nil {
				err = fmt.Errorf("stopped by %s (exit %d)", *s, code)
			}
		}
		fmt.Fprintf(stderr, "walrec demo: %v (the temporary directory %s was removed)\n", err, quoteName(dir))
		return code
	}
	if s := stopped(ctx); s != nil {
		fmt.Fprintf(stderr, "walrec demo: %s came once the demo was done (exit %d)\n", *s, stopCode(ctx))
		return stopCode(ctx)
	}
	return exitOK
}

// dirOr is dir, or the default temporary directory for "".
func dirOr(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}

// openRow is one line of the demo's table.
type openRow struct {
	name       string
	res        recovery.Result
	trunc      *db.TruncationReport
	elapsed    time.Duration
	heapGrowth int64
	heapAfter  int64 // heap growth still held with the database open, after a collection
	keys       int
	live       int64 // bytes of keys and values in the store

	par     int
	discard bool  // recovery.Recover into no store (verify), not db.Open
	prefix  int64 // discard: recover only the file's first prefix bytes (0: all of it)

	work func(*db.DB) error // run on the open database before it closes
}

func runDemo(ctx context.Context, dir string, size int64, seed uint64, stdout *errWriter, stderr io.Writer, of *outFlags) error {
	path := filepath.Join(dir, "demo.db")
	fmt.Fprintf(stdout, "walrec demo: build a database, crash it mid-append, and watch recovery open it again\n\n")
	fmt.Fprintf(stdout, "  workdir   %s (removed at the end)\n", quoteName(dir))
	if stdout.err != nil {
		return stdout.err
	}

	// 1. Build.
	start := time.Now()
	w := newWorkload(seed)
	built, err := w.build(ctx, path, size, of.progress(stderr, "build", path))
	if err != nil {
		return err
	}
	pauseHere(ctx, "demo-built")
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  built     demo.db: %s, %s transactions, %s ops (sets and deletes) in %.1fs\n",
		mib(built.bytes), group(built.records), group(built.ops), time.Since(start).Seconds())
	fmt.Fprintf(stdout, "            with format.AppendRecord, the encoder db commits use (not db.Update: its fsync per commit takes tens of seconds for this)\n")

	// 2. Crash mid-append: the first half of one more transaction's record reaches the file.
	rec := format.AppendRecord(nil, format.LayoutV1, w.tx())
	torn := rec[:len(rec)/2]
	if err := appendFile(path, torn); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  crash     the last append stopped part way: %s of its %s bytes reached the file, at offset %s\n\n",
		group(int64(len(torn))), group(int64(len(rec))), group(built.bytes))
	if stdout.err != nil {
		return stdout.err
	}

	// 3. Reopen it read-only: recovery alone into no store, on a quarter of the log and on
	// all of it (its memory does not grow with the log), then the database's open, which
	// rebuilds the store, sequentially and in parallel.
	par := max(2, runtime.GOMAXPROCS(0))
	rows := []*openRow{
		{name: "recovery alone, sequential", par: 1, discard: true, prefix: built.quarter},
		{name: "recovery alone, sequential", par: 1, discard: true},
		{name: fmt.Sprintf("recovery alone, parallel (%d)", par), par: par, discard: true},
		{name: "database open, sequential", par: 1},
		{name: fmt.Sprintf("database open, parallel (%d)", par), par: par},
	}
	for _, row := range rows {
		if err := row.open(ctx, path, stderr, of, db.ReadOnly()); err != nil {
			return err
		}
	}
	dbRow := rows[3]
	fmt.Fprintf(stdout, "  %-30s %10s %8s %7s %6s %12s %10s %10s\n",
		"read-only open of the log", "log read", "records", "seconds", "MB/s", "read buffers", "heap peak", "heap kept")
	for _, r := range rows {
		kept := mib(r.heapAfter)
		if r.discard {
			kept = "-"
		}
		fmt.Fprintf(stdout, "  %-30s %10s %8s %7.2f %6.0f %12s %10s %10s\n", r.name, mib(r.res.Size), group(r.res.Records),
			r.elapsed.Seconds(), float64(r.res.Size)/1e6/r.elapsed.Seconds(), mib(r.res.PeakBuffered), mib(r.heapGrowth), kept)
	}
	quarter, all := rows[0], rows[1]
	fmt.Fprintf(stdout, "\n  memory    recovery's read buffers peaked at %s for a quarter of the log and %s for all of it: x%.2f for x%.1f the bytes (%s in parallel);\n",
		mib(quarter.res.PeakBuffered), mib(all.res.PeakBuffered), float64(all.res.PeakBuffered)/float64(max(1, quarter.res.PeakBuffered)),
		float64(all.res.Size)/float64(max(1, quarter.res.Size)), mib(rows[2].res.PeakBuffered))
	fmt.Fprintf(stdout, "            the database also rebuilds its store, which it keeps: %s keys, %s of keys and values\n",
		group(int64(dbRow.keys)), mib(dbRow.live))
	t := dbRow.trunc
	if t == nil {
		return errors.New("recovery reported no truncation of the torn record")
	}
	fmt.Fprintf(stdout, "  found     %s at offset %s: %s; a read-only open cuts nothing\n", t.Reason, group(t.Offset), t.Detail)
	if stdout.err != nil {
		return stdout.err
	}

	// 4. Open it for writing: the cut, with its sidecar copy; then one more commit.
	fix := &openRow{name: "read-write", par: par}
	fix.work = func(d *db.DB) error {
		return d.Update(func(tx *db.Tx) error {
			return tx.Set([]byte("demo:after-the-crash"), []byte("the first commit after recovery"))
		})
	}
	if err := fix.open(ctx, path, stderr, of); err != nil {
		return err
	}
	t = fix.trunc
	if t == nil || !t.Truncated {
		return errors.New("the read-write open did not cut the torn record")
	}
	fi, err := os.Stat(t.Sidecar)
	if err != nil {
		return fmt.Errorf("the sidecar file: %w", err)
	}
	fmt.Fprintf(stdout, "  repaired  a read-write open cut those %s bytes (%s), after copying them to %s (%s bytes)\n",
		group(t.Bytes), t.Reason, filepath.Base(t.Sidecar), group(fi.Size()))
	again := &openRow{name: "again"}
	if err := again.open(ctx, path, stderr, of, db.ReadOnly()); err != nil {
		return err
	}
	if again.trunc != nil {
		return fmt.Errorf("the repaired database still has a tail to cut: %+v", again.trunc.Truncation)
	}
	fmt.Fprintf(stdout, "  after     one more commit, then a clean reopen: %s records, nothing to cut, %s keys\n",
		group(again.res.Records), group(int64(again.keys)))
	return stdout.err
}

// open opens the database at path with opts (discard: recovers it read-only into no store),
// measures the open, reads the store's size, does r.work, and closes it.
func (r *openRow) open(ctx context.Context, path string, stderr io.Writer, of *outFlags, opts ...db.Option) error {
	p := of.progress(stderr, "recover", path)
	defer p.done()
	h := heapsample.Start(time.Millisecond)
	ropts := []recovery.Option{recovery.WithProgress(both(p.callback(), func(int64, int64) { h.Sample() }))}
	if r.par > 0 {
		ropts = append(ropts, recovery.WithParallelism(r.par))
	}
	if r.discard {
		f, err := openInput(path)
		if err != nil {
			h.Growth()
			return err
		}
		var rf recovery.File = f
		if r.prefix > 0 {
			rf = prefixFile{f, r.prefix}
		}
		start := time.Now()
		res, err := recovery.Recover(ctx, rf, nil, append(ropts, recovery.ReadOnly())...)
		r.elapsed = time.Since(start)
		r.heapGrowth = h.Growth()
		p.done()
		f.Close()
		r.res = res
		return err
	}
	opts = append(opts, db.WithRecovery(ropts...))
	start := time.Now()
	d, err := db.OpenContext(ctx, path, opts...)
	r.elapsed = time.Since(start)
	r.heapGrowth = h.Growth()
	p.done()
	if err != nil {
		return err
	}
	runtime.GC()
	r.heapAfter = max(0, int64(heapsample.Objects())-int64(h.Base))
	r.res, r.trunc = d.Recovery(), d.Truncation()
	err = d.View(func(tx *db.Tx) error {
		r.keys = tx.Len()
		for k, v := range tx.Range(nil, nil) {
			r.live += int64(len(k) + len(v))
		}
		return nil
	})
	if err == nil && r.work != nil {
		err = r.work(d)
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// prefixFile is the first n bytes of a file.
type prefixFile struct {
	recovery.File
	n int64
}

func (p prefixFile) Size() int64 { return p.n }

func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ---- the sample workload ----

// workload is the demo's transaction generator (internal/workload, shared with the database
// benchmarks so that they measure the demo's log).
type workload struct{ *shop.Shop }

func newWorkload(seed uint64) *workload { return &workload{shop.NewShop(seed)} }

func (w *workload) tx() []byte { return w.Tx() }

type buildStats struct {
	records, ops, bytes int64
	quarter             int64 // the end of the first record past a quarter of the log
}

// build writes a v1 log of whole transactions at path, stopping before it passes size.
func (w *workload) build(ctx context.Context, path string, size int64, p *progress) (buildStats, error) {
	st := buildStats{bytes: format.FileHeaderSize}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return st, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.Write(format.FileHeader[:])
	var rec []byte
	for {
		if st.records%1024 == 0 {
			if err = ctx.Err(); err != nil {
				break
			}
			p.set(st.bytes, size)
		}
		payload := w.tx()
		rec = format.AppendRecord(rec[:0], format.LayoutV1, payload)
		if st.bytes+int64(len(rec)) > size && st.records > 0 {
			break
		}
		n, _ := format.CountOps(payload)
		if _, err = bw.Write(rec); err != nil {
			break
		}
		st.records++
		st.ops += int64(n)
		st.bytes += int64(len(rec))
		if st.quarter == 0 && st.bytes >= size/4 {
			st.quarter = st.bytes
		}
	}
	p.done()
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st, err
}
