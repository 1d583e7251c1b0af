package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/streamwal/recovery/internal/heapsample"
	"io"
	"math/rand/v2"
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
  3. reopens it read-only with the sequential loop and with the parallel pipeline, and
     prints for each: records, bytes, MB/s, and peak recovery memory (the buffer pool's
     peak, and the heap's sampled growth, which includes the rebuilt store) next to the
     file size;
  4. opens it for writing, which cuts the torn record (keeping its bytes in a sidecar
     file), commits once more and reopens it cleanly;
  5. removes the temporary directory and everything in it.

It takes a few seconds and needs about 300 MiB of free space in the temporary directory
($TMPDIR). The sample is written with format.AppendRecord (the encoder the database's
commits use), not through db.Update, whose fsync per commit makes the same build take
tens of seconds (about 23 s on a 2-core VM). The database then commits through db.Update
after the repair.

Exit status: 0 done, 3 an error (the temporary directory is removed either way).
`

const demoDefaultSize = 256 << 20

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo")
	size := sizeFlag(demoDefaultSize)
	fs.Var(&size, "demo-size", "size of the sample database")
	tmp := fs.String("tmpdir", "", "where to make the temporary directory (default $TMPDIR)")
	seed := fs.Uint64("demo-seed", 1, "workload seed")
	_, code, ok := parseFlags(fs, demoUsage, args, 0, stdout, stderr)
	if !ok {
		return code
	}
	dir, err := os.MkdirTemp(*tmp, "walrec-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "walrec demo: %v\n", err)
		return exitError
	}
	err = runDemo(ctx, dir, int64(size), *seed, stdout, stderr)
	if rerr := os.RemoveAll(dir); rerr != nil {
		fmt.Fprintf(stderr, "walrec demo: removing %s: %v\n", dir, rerr)
		return exitError
	}
	if err != nil {
		fmt.Fprintf(stderr, "walrec demo: %v (the temporary directory %s was removed)\n", err, dir)
		return exitError
	}
	fmt.Fprintf(stdout, "  cleanup   removed %s\n", dir)
	return exitOK
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
	discard bool // recovery.Recover into no store (verify), not db.Open

	work func(*db.DB) error // run on the open database before it closes
}

func runDemo(ctx context.Context, dir string, size int64, seed uint64, stdout, stderr io.Writer) error {
	path := filepath.Join(dir, "demo.db")
	fmt.Fprintf(stdout, "walrec demo: build a database, crash it mid-append, and watch recovery open it again\n\n")
	fmt.Fprintf(stdout, "  workdir   %s (removed at the end)\n", dir)

	// 1. Build.
	start := time.Now()
	w := newWorkload(seed)
	built, err := w.build(ctx, path, size, newProgress(stderr, "build"))
	if err != nil {
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

	// 3. Reopen it read-only, sequentially and in parallel; then recovery alone, into no store.
	par := max(2, runtime.GOMAXPROCS(0))
	rows := []*openRow{
		{name: "db.Open, sequential (1)", par: 1},
		{name: fmt.Sprintf("db.Open, parallel (%d)", par), par: par},
		{name: "recovery only, sequential", par: 1, discard: true},
		{name: fmt.Sprintf("recovery only, parallel (%d)", par), par: par, discard: true},
	}
	for _, row := range rows {
		if err := row.open(ctx, path, stderr, db.ReadOnly()); err != nil {
			return err
		}
	}
	fileSize := rows[0].res.Size
	fmt.Fprintf(stdout, "  %-29s %8s %10s %7s %6s %10s %10s %10s\n",
		"read-only open of "+mib(fileSize), "records", "replayed", "seconds", "MB/s", "pool peak", "heap peak", "heap after")
	for _, r := range rows {
		fmt.Fprintf(stdout, "  %-29s %8s %10s %7.2f %6.0f %10s %10s %10s\n", r.name, group(r.res.Records), mib(r.res.Bytes),
			r.elapsed.Seconds(), float64(fileSize)/1e6/r.elapsed.Seconds(), mib(r.res.PeakBuffered), mib(r.heapGrowth), mib(r.heapAfter))
	}
	r0 := rows[0]
	fmt.Fprintf(stdout, "\n  memory    pool peak: recovery's read buffers (the pool's own accounting), bounded by the pool, not the file\n")
	fmt.Fprintf(stdout, "            heap peak: the heap's growth during the open, sampled every ms: pool, store being rebuilt, garbage\n")
	fmt.Fprintf(stdout, "            heap after: what the open database keeps after a collection: %s keys, %s of keys and values\n",
		group(int64(r0.keys)), mib(r0.live))
	t := r0.trunc
	if t == nil {
		return errors.New("recovery reported no truncation of the torn record")
	}
	fmt.Fprintf(stdout, "  found     %s at offset %s: %s; a read-only open cuts nothing\n", t.Reason, group(t.Offset), t.Detail)

	// 4. Open it for writing: the cut, with its sidecar copy; then one more commit.
	fix := &openRow{name: "read-write", par: par}
	fix.work = func(d *db.DB) error {
		return d.Update(func(tx *db.Tx) error {
			return tx.Set([]byte("demo:after-the-crash"), []byte("the first commit after recovery"))
		})
	}
	if err := fix.open(ctx, path, stderr); err != nil {
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
	if err := again.open(ctx, path, stderr, db.ReadOnly()); err != nil {
		return err
	}
	if again.trunc != nil {
		return fmt.Errorf("the repaired database still has a tail to cut: %+v", again.trunc.Truncation)
	}
	fmt.Fprintf(stdout, "  after     one more commit, then a clean reopen: %s records, nothing to cut, %s keys\n",
		group(again.res.Records), group(int64(again.keys)))
	return nil
}

// open opens the database at path with opts (discard: recovers it read-only into no store),
// measures the open, reads the store's size, does r.work, and closes it.
func (r *openRow) open(ctx context.Context, path string, stderr io.Writer, opts ...db.Option) error {
	p := newProgress(stderr, "recover")
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
		start := time.Now()
		res, err := recovery.Recover(ctx, f, nil, append(ropts, recovery.ReadOnly())...)
		r.elapsed = time.Since(start)
		r.heapGrowth = h.Growth()
		p.done()
		f.Close()
		r.res = res
		return err
	}
	opts = append(opts, db.WithContext(ctx), db.WithRecovery(ropts...))
	start := time.Now()
	d, err := db.Open(path, opts...)
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

// workload makes realistic transactions for a small shop: orders (each also updating its
// customer and a counter, and expiring an old order), profile updates, logins and logouts,
// and now and then a bulk catalogue import. Values are JSON documents of a few hundred bytes
// to a few KiB; keys live in bounded key spaces, so later transactions overwrite and delete
// earlier ones, as in a real log.
type workload struct {
	rng       *rand.Rand
	nextOrder int64
	payload   []byte
	val       []byte
}

const (
	demoUsers    = 20_000
	demoItems    = 20_000
	demoSessions = 5_000
	orderWindow  = 20_000 // orders kept; older ones are deleted
)

var lorem = []byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation " +
	"ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in " +
	"voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non " +
	"proident, sunt in culpa qui officia deserunt mollit anim id est laborum. ")

func newWorkload(seed uint64) *workload {
	return &workload{rng: rand.New(rand.NewPCG(seed, 0xdeadbeefcafe))}
}

// text appends n bytes of lorem ipsum, starting somewhere, to w.val.
func (w *workload) text(n int) {
	for end := len(w.val) + n; len(w.val) < end; {
		i := w.rng.IntN(len(lorem))
		w.val = append(w.val, lorem[i:min(len(lorem), i+end-len(w.val))]...)
	}
}

func (w *workload) set(key, value []byte) { w.payload = format.AppendSet(w.payload, key, value) }

func (w *workload) profile(u int) {
	w.val = w.val[:0]
	w.val = fmt.Appendf(w.val, `{"id":%d,"name":"customer %d","email":"c%d@example.com","plan":"%s","visits":%d,"bio":"`,
		u, u, u, []string{"free", "pro", "team"}[w.rng.IntN(3)], w.rng.IntN(100000))
	w.text(150 + w.rng.IntN(600))
	w.val = append(w.val, `"}`...)
	w.set(fmt.Appendf(nil, "user:%06d", u), w.val)
}

// tx returns the next transaction's payload (valid until the next call).
func (w *workload) tx() []byte {
	w.payload = w.payload[:0]
	r := w.rng
	switch x := r.IntN(100); {
	case x < 45: // an order
		id := w.nextOrder
		w.nextOrder++
		u := r.IntN(demoUsers)
		w.val = fmt.Appendf(w.val[:0], `{"order":%d,"user":%d,"items":[`, id, u)
		for i := range 1 + r.IntN(8) {
			if i > 0 {
				w.val = append(w.val, ',')
			}
			w.val = fmt.Appendf(w.val, `{"sku":"item:%06d","qty":%d,"cents":%d}`, r.IntN(demoItems), 1+r.IntN(4), 100+r.IntN(50000))
		}
		w.val = append(w.val, `],"note":"`...)
		w.text(200 + r.IntN(1200))
		w.val = append(w.val, `"}`...)
		w.set(fmt.Appendf(nil, "order:%010d", id), w.val)
		w.profile(u)
		w.set([]byte("counter:orders"), fmt.Appendf(nil, "%d", id+1))
		if id >= orderWindow {
			w.payload = format.AppendDelete(w.payload, fmt.Appendf(nil, "order:%010d", id-orderWindow))
		}
	case x < 75: // a profile update
		w.profile(r.IntN(demoUsers))
	case x < 95: // a login and a logout
		w.val = fmt.Appendf(w.val[:0], `{"user":%d,"token":"%016x%016x","agent":"Mozilla/5.0 (X11; Linux x86_64)"}`,
			r.IntN(demoUsers), r.Uint64(), r.Uint64())
		w.set(fmt.Appendf(nil, "session:%05d", r.IntN(demoSessions)), w.val)
		w.payload = format.AppendDelete(w.payload, fmt.Appendf(nil, "session:%05d", r.IntN(demoSessions)))
	default: // a bulk catalogue import
		for range 20 + r.IntN(180) {
			i := r.IntN(demoItems)
			w.val = fmt.Appendf(w.val[:0], `{"sku":"item:%06d","cents":%d,"stock":%d,"description":"`, i, 100+r.IntN(50000), r.IntN(1000))
			w.text(100 + r.IntN(1000))
			w.val = append(w.val, `"}`...)
			w.set(fmt.Appendf(nil, "item:%06d", i), w.val)
		}
	}
	return w.payload
}

type buildStats struct{ records, ops, bytes int64 }

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
