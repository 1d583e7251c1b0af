package dst

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
	"github.com/streamwal/recovery/format"
)

const dbPath = "/data/app.db"

// failure is how a check stops a run; runOne turns it into an error.
type failure struct{ msg string }

// record is one committed record in the file, and the model's state after it.
type record struct {
	start, end int64
	after      model
}

// run is one seed through one profile.
type run struct {
	seed uint64
	prof string
	rng  *rand.Rand // the workload's choices
	fs   *simfs.FS
	d    *db.DB // nil while closed

	m       model    // what is committed and acknowledged
	records []record // what the file holds, in order
	legacy  bool     // the file started as a legacy (LibreDB 0.1.x) log

	keys      []string
	readSize  int   // recovery's read size (0: default)
	maxRecord int64 // the database's maximum record size
	extra     []recovery.Option
	huge      bool // values over 1 MiB may occur (some runs only: they are slow under -race)
	embed     bool // values often embed whole records and log files (the embedded profile)
	nextOps   []op // the next interrupted commit's ops, when a profile chooses them
	trace     []string
	tally     map[string]int // outcomes seen, for the coverage check
}

func (r *run) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf(format, args...))
}

func (r *run) failf(format string, args ...any) {
	panic(failure{fmt.Sprintf(format, args...)})
}

func (r *run) check(ok bool, format string, args ...any) {
	if !ok {
		r.failf(format, args...)
	}
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// runOne runs seed through profile p and returns what went wrong, or nil.
func runOne(seed uint64, p profile, tally map[string]int) (err error) {
	r := &run{seed: seed, prof: p.name, m: model{}, tally: tally}
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		msg := ""
		if f, ok := v.(failure); ok {
			msg = f.msg
		} else {
			msg = fmt.Sprintf("panic: %v\n%s", v, debug.Stack())
		}
		tr := r.trace
		if len(tr) > 40 {
			tr = append([]string{"..."}, tr[len(tr)-40:]...)
		}
		err = fmt.Errorf("%s\ntrace:\n  %s", msg, strings.Join(tr, "\n  "))
	}()
	r.setup()
	p.fn(r)
	if r.d != nil {
		r.d.Close()
	}
	return nil
}

// setup draws the run's parameters and opens the database, on a new v1 file or (a fifth of
// the runs) a legacy file the test writes itself through format.AppendRecord.
func (r *run) setup() {
	r.rng = rand.New(rand.NewPCG(r.seed, hash(r.prof)))
	r.fs = simfs.New(r.seed ^ hash(r.prof)<<1)
	r.readSize = []int{4 << 10, 64 << 10, 0}[r.rng.IntN(3)]
	r.maxRecord = recovery.DefaultMaxRecord
	if r.rng.IntN(7) == 0 {
		r.maxRecord = 256 << 10
	}
	nk := 4 + r.rng.IntN(40)
	r.keys = []string{""} // the empty key is a key
	for len(r.keys) < nk {
		if r.rng.IntN(3) == 0 {
			r.keys = append(r.keys, fmt.Sprintf("key/%03d", r.rng.IntN(1000)))
		} else {
			r.keys = append(r.keys, string(r.bytes(1+r.rng.IntN(12))))
		}
	}
	r.legacy = r.rng.IntN(5) == 0 && r.prof != "embedded" // the torn-record rule under test is v1's
	r.huge = r.rng.IntN(8) == 0
	r.logf("seed %d profile %s: readSize %d maxRecord %d keys %d legacy %v huge %v",
		r.seed, r.prof, r.readSize, r.maxRecord, nk, r.legacy, r.huge)
	if !r.legacy {
		d, err := db.Open(dbPath, r.opts(r.fs, 1)...)
		r.check(err == nil, "open a new database: %v", err)
		r.d = d
		return
	}
	var file []byte
	for range 1 + r.rng.IntN(3) {
		ops := r.opsFitting()
		var payload []byte
		for _, o := range ops {
			if o.del {
				payload = format.AppendDelete(payload, []byte(o.k))
			} else {
				payload = format.AppendSet(payload, []byte(o.k), []byte(o.v))
			}
		}
		start := int64(len(file))
		file = format.AppendRecord(file, format.LayoutLegacy, payload)
		r.m = r.m.apply(ops)
		r.records = append(r.records, record{start, int64(len(file)), r.m})
	}
	r.fs.WriteFile(dbPath, file)
	r.logf("legacy file: %d records, %d bytes", len(r.records), len(file))
	r.reopen(expectation{state: r.m})
	r.check(r.d.Recovery().Layout == recovery.LayoutLegacy, "layout %v, want legacy", r.d.Recovery().Layout)
}

func (r *run) opts(fs *simfs.FS, par int, extra ...db.Option) []db.Option {
	ro := []recovery.Option{recovery.WithParallelism(par)}
	if r.readSize > 0 {
		ro = append(ro, recovery.WithReadSize(r.readSize))
	}
	ro = append(ro, r.extra...)
	return append([]db.Option{db.WithFS(fs), db.WithRecovery(ro...), db.WithMaxRecordSize(r.maxRecord)}, extra...)
}

// ---- the workload ----

var errAbort = errors.New("dst: the transaction chose to abort")

// bytes returns n seeded bytes.
func (r *run) bytes(n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.rng.Uint64())
	}
	return b[:n]
}

// value draws a value: often small, sometimes empty, rarely large (beyond the read size too).
func (r *run) value() string {
	if r.embed && r.rng.IntN(3) == 0 {
		return r.embeddedLog()
	}
	switch x := r.rng.IntN(1000); {
	case x < 100:
		return ""
	case x < 850:
		return string(r.bytes(1 + r.rng.IntN(64)))
	case x < 995:
		return string(r.bytes(65 + r.rng.IntN(4000)))
	case x < 999 || !r.huge:
		return string(r.bytes(64<<10 + r.rng.IntN(64<<10)))
	}
	return string(r.bytes(1<<20 + r.rng.IntN(200<<10))) // larger than recovery's default read size
}

func (r *run) key() string { return r.keys[r.rng.IntN(len(r.keys))] }

// embeddedLog is a value that holds whole, valid records (a log file, a message carrying one):
// a torn commit of it leaves well-formed records inside its own unfinished payload.
func (r *run) embeddedLog() string {
	var b []byte
	if r.rng.IntN(2) == 0 {
		b = append(b, r.bytes(r.rng.IntN(40))...)
	}
	if r.rng.IntN(2) == 0 {
		b = append(b, format.FileHeader[:]...)
	}
	for range 1 + r.rng.IntN(6) {
		var payload []byte
		for range 1 + r.rng.IntN(3) {
			payload = format.AppendSet(payload, r.bytes(1+r.rng.IntN(8)), r.bytes(r.rng.IntN(200)))
		}
		b = format.AppendRecord(b, format.LayoutV1, payload)
	}
	return string(b)
}

// ops draws a transaction's ops: sets and deletes (of present and absent keys), overwrites.
func (r *run) ops() []op {
	n := 1 + r.rng.IntN(8)
	out := make([]op, 0, n)
	for range n {
		if r.rng.IntN(4) == 0 {
			out = append(out, op{del: true, k: r.key()})
		} else {
			out = append(out, op{k: r.key(), v: r.value()})
		}
	}
	return out
}

func (r *run) opsFitting() []op {
	for {
		if ops := r.ops(); payloadSize(ops) <= r.maxRecord {
			return ops
		}
	}
}

func (r *run) size() int64 {
	d, p := r.fs.Durable(dbPath)
	return d + p
}

// update runs ops in one Update, checking read-your-writes along the way against the model
// plus the transaction's own ops, and expecting TX_TOO_LARGE exactly when the ops outgrow the
// maximum record size. It returns Update's error.
func (r *run) update(ops []op, abort bool) error {
	overlay := r.m.clone()
	var size int64
	return r.d.Update(func(tx *db.Tx) error {
		for _, o := range ops {
			var err error
			if o.del {
				size += 1 + 4 + int64(len(o.k))
				err = tx.Delete([]byte(o.k))
			} else {
				size += 1 + 4 + int64(len(o.k)) + 4 + int64(len(o.v))
				err = tx.Set([]byte(o.k), []byte(o.v))
			}
			if size > r.maxRecord {
				r.check(errors.Is(err, db.ErrTxTooLarge), "an op taking the payload to %d bytes (max %d): %v, want TX_TOO_LARGE", size, r.maxRecord, err)
				return err
			}
			r.check(err == nil, "op in Update: %v", err)
			overlay = overlay.apply([]op{o})
			if r.rng.IntN(3) == 0 {
				k := r.key()
				v, ok := tx.Get([]byte(k))
				want, wok := overlay[k]
				r.check(ok == wok && string(v) == want, "read-your-writes: Get(%q) = %d bytes, %v; want %d bytes, %v", k, len(v), ok, len(want), wok)
			}
		}
		if r.rng.IntN(4) == 0 {
			r.checkRange(tx, overlay)
		}
		if abort {
			return errAbort
		}
		return nil
	})
}

// checkRange compares a seeded range of tx with the model.
func (r *run) checkRange(tx *db.Tx, m model) {
	start, end := r.key(), r.key()
	var endp *string
	var endb []byte
	if r.rng.IntN(3) > 0 {
		endp, endb = &end, []byte(end)
	}
	var got []pair
	for k, v := range tx.Range([]byte(start), endb) {
		got = append(got, pair{string(k), string(v)})
	}
	want := m.scan(start, endp)
	r.check(equalPairs(got, want), "Range(%q, %v): %d pairs, model says %d", start, endp != nil, len(got), len(want))
}

// step is one step of the workload: mostly a write transaction (some abort, some too large),
// sometimes an empty one, sometimes a View checking the whole state.
func (r *run) step() {
	switch x := r.rng.IntN(100); {
	case x < 3:
		r.checkReader()
	case x < 8:
		r.checkView()
	case x < 12:
		before := r.size()
		err := r.d.Update(func(tx *db.Tx) error {
			if r.rng.IntN(2) == 0 {
				_, _ = tx.Get([]byte(r.key()))
			}
			return nil
		})
		r.check(err == nil && r.size() == before, "empty Update: %v, file %d -> %d bytes", err, before, r.size())
	default:
		r.commit(r.ops(), r.rng.IntN(10) == 0)
	}
}

// commit runs one transaction and checks its outcome: committed (one record appended and
// durable before Update returned), aborted or too large (nothing written).
func (r *run) commit(ops []op, abort bool) {
	before := r.size()
	cbefore := r.fs.Counters()
	err := r.update(ops, abort)
	tooLarge := payloadSize(ops) > r.maxRecord
	switch {
	case tooLarge:
		r.check(errors.Is(err, db.ErrTxTooLarge) && db.CodeOf(err) == "TX_TOO_LARGE", "a %d-byte transaction: %v, want TX_TOO_LARGE", payloadSize(ops), err)
	case abort:
		r.check(err == errAbort, "aborted transaction: Update returned %v", err)
	default:
		r.check(err == nil, "commit: %v", err)
		r.m = r.m.apply(ops)
		start := before
		if before == 0 {
			start = format.FileHeaderSize // the first append carries the file header
		}
		d, p := r.fs.Durable(dbPath)
		r.check(p == 0 && d > start, "after a commit: %d durable, %d pending bytes (was %d)", d, p, before)
		// One record, in ONE append (the file header of a new file included), one fsync, in
		// the layout the file already has.
		hdr := int64(format.V1HeaderSize)
		if r.legacy && before > 0 {
			hdr = format.LegacyHeaderSize
		}
		c := r.fs.Counters()
		r.check(c.Appends-cbefore.Appends == 1 && c.Syncs-cbefore.Syncs == 1,
			"a commit made %d appends and %d fsyncs, want one of each", c.Appends-cbefore.Appends, c.Syncs-cbefore.Syncs)
		r.check(d-start == hdr+int64(payloadSize(ops)), "a commit of a %d-byte payload grew the file by %d bytes (record header %d)", payloadSize(ops), d-start, hdr)
		r.records = append(r.records, record{start, d, r.m})
		r.logf("commit %d ops: record [%d, %d)", len(ops), start, d)
		return
	}
	r.check(r.size() == before, "a transaction that did not commit wrote %d bytes", r.size()-before)
	r.logf("no commit (%d ops, abort %v, too large %v)", len(ops), abort, tooLarge)
}

func (r *run) workload(n int) {
	for range n {
		r.step()
	}
}

// ensureRecords commits until the file holds at least n records.
func (r *run) ensureRecords(n int) {
	for len(r.records) < n {
		r.commit(r.opsFitting(), false)
	}
}

// checkView compares the whole committed state, a seeded range and a few Gets with the model.
func (r *run) checkView() {
	err := r.d.View(func(tx *db.Tx) error {
		var got []pair
		for k, v := range tx.Range(nil, nil) {
			got = append(got, pair{string(k), string(v)})
		}
		want := r.m.all()
		r.check(equalPairs(got, want), "View: %d pairs, model has %d%s", len(got), len(want), diff(got, want))
		r.checkRange(tx, r.m)
		for range 3 {
			k := r.key()
			v, ok := tx.Get([]byte(k))
			w, wok := r.m[k]
			r.check(ok == wok && string(v) == w, "View Get(%q) = %v, model %v", k, ok, wok)
		}
		return nil
	})
	r.check(err == nil, "View: %v", err)
}

// checkReader opens the database read-only beside the writer (no lock, no write) and checks
// it recovers the committed state.
func (r *run) checkReader() {
	before, c0 := r.fs.Versions(), r.fs.Counters()
	ro, err := db.Open(dbPath, r.opts(r.fs, 1+r.rng.IntN(4), db.ReadOnly())...)
	r.check(err == nil, "a read-only open beside the writer: %v", err)
	var got []pair
	err = ro.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(nil, nil) {
			got = append(got, pair{string(k), string(v)})
		}
		return nil
	})
	r.check(err == nil && ro.Close() == nil, "reader: %v", err)
	want := r.m.all()
	r.check(equalPairs(got, want), "a reader beside the writer: %d pairs, model has %d%s", len(got), len(want), diff(got, want))
	c := delta(r.fs.Counters(), c0)
	r.check(maps.Equal(r.fs.Versions(), before) && c.Changes == 0, "a read-only open beside the writer wrote: %+v", c)
	r.tally["reader"]++
}

func diff(got, want []pair) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf(": first difference at %d: key %q (%d-byte value) vs model %q (%d-byte value)",
				i, got[i].K, len(got[i].V), want[i].K, len(want[i].V))
		}
	}
	return ""
}

// ---- reopening, checked ----

// expectation is what an open must do.
type expectation struct {
	code   string // "" for success, else the recovery error code
	errOff int64  // the error's offset, -1 not to check
	state  model  // on success
	cut    *cut   // on success: the truncation, nil for none
	// fired checks that the injected fault fired, from the counters of the reopen's filesystem.
	fired func(simfs.Counters) bool
	cause error // on a refusal: a cause the error must also match, nil not to check
	// loose: the exact outcome depends on what the disk kept of a failure nobody could
	// clean up; the open may cut anything from cut.off on (with a sidecar), or refuse with
	// code, but must recover state.
	loose bool
}

type cut struct {
	off, bytes int64
	reason     recovery.Reason
}

func (c *cut) String() string {
	if c == nil {
		return "no cut"
	}
	return fmt.Sprintf("cut [%d, +%d) %s", c.off, c.bytes, c.reason)
}

var sentinel = map[string]error{
	"CORRUPT_WAL":     recovery.ErrCorruptWAL,
	"INCOMPLETE_READ": recovery.ErrIncompleteRead,
	"IO_ERROR":        recovery.ErrIO,
	"NOT_A_DATABASE":  recovery.ErrNotADatabase,
}

type opened struct {
	d       *db.DB
	err     error
	state   []pair
	reports []db.TruncationReport
	files   map[string]uint64 // versions (simfs.FS.Versions)
	c       simfs.Counters
}

func (r *run) openOn(fs *simfs.FS, par int, extra ...db.Option) opened {
	var o opened
	extra = append(extra, db.OnTruncate(func(t db.TruncationReport) { o.reports = append(o.reports, t) }))
	o.d, o.err = db.Open(dbPath, r.opts(fs, par, extra...)...)
	if o.err == nil {
		err := o.d.View(func(tx *db.Tx) error {
			for k, v := range tx.Range(nil, nil) {
				o.state = append(o.state, pair{string(k), string(v)})
			}
			return nil
		})
		r.check(err == nil, "View after open: %v", err)
	}
	o.files = fs.Versions()
	o.c = fs.Counters()
	return o
}

// reopen closes the database (if open) and opens the file three ways: read-only, then
// writable at parallelism 1 (on the filesystem itself) and at parallelism 4 (on a copy of it
// made before). All three must decide the same; the writable two must leave identical files;
// the read-only one must write nothing; and the outcome must be the expected one. On success
// the run continues on one of the writable two (alternating with the seed).
func (r *run) reopen(exp expectation) {
	if r.d != nil {
		r.check(r.d.Close() == nil, "close")
		r.d = nil
	}
	before := r.fs.Versions()
	r.logf("reopen expecting %q %v (file %d bytes)", exp.code, exp.cut, r.size())

	c0 := r.fs.Counters()
	ro := r.openOn(r.fs, 4, db.ReadOnly()) // on the filesystem itself: it must not change it
	if ro.d != nil {
		ro.d.Close()
	}
	ro.c = delta(ro.c, c0)
	r.check(maps.Equal(ro.files, before), "a read-only open changed the files")
	r.check(ro.c.Appends == 0 && ro.c.Truncates == 0 && ro.c.Syncs == 0 && ro.c.SyncDirs == 0, "a read-only open wrote: %+v", ro.c)

	var file []byte // the file before any writable open, to check the sidecar against
	if exp.cut != nil {
		file = r.fs.Bytes(dbPath)
	}
	fss := [2]*simfs.FS{r.fs, r.fs.Clone()}
	var outs [2]opened
	for i, par := range []int{1, 4} {
		c0 := fss[i].Counters()
		outs[i] = r.openOn(fss[i], par)
		outs[i].c = delta(outs[i].c, c0)
	}
	keep := int(r.seed % 2)
	defer func() { // whatever happens, no database is left open but the kept one
		for i := range outs {
			if outs[i].d != nil && (i != keep || r.d == nil) {
				outs[i].d.Close()
			}
		}
	}()
	a, b := outs[0], outs[1]
	r.check(db.CodeOf(a.err) == db.CodeOf(b.err) && errOffset(a.err) == errOffset(b.err),
		"parallelism 1 and 4 disagree: %v / %v", a.err, b.err)
	r.check(db.CodeOf(a.err) == db.CodeOf(ro.err), "read-only and writable opens disagree: %v / %v", ro.err, a.err)
	r.check(equalPairs(a.state, b.state) && equalPairs(a.state, ro.state), "parallelism 1, 4 and read-only recovered different states")
	r.check(slices.Equal(a.reports, b.reports), "parallelism 1 and 4 reported different truncations: %+v / %+v", a.reports, b.reports)
	r.check(sameContents(fss[0], a.files, fss[1], b.files), "parallelism 1 and 4 left different files")

	if exp.fired != nil {
		r.check(exp.fired(a.c) && exp.fired(b.c) && exp.fired(ro.c), "the injected fault did not fire: %+v", a.c)
	}

	if exp.loose {
		switch {
		case a.err != nil:
			r.check(string(db.CodeOf(a.err)) == exp.code, "open: %v, want success or %s", a.err, exp.code)
			r.tally["refused:"+exp.code]++
			return
		case len(a.reports) == 1:
			t := a.reports[0]
			r.check(t.Offset >= exp.cut.off && t.Offset+t.Bytes == int64(len(file)) && t.Truncated && t.Sidecar != "",
				"truncation %+v, want one at or after %d to the end", t, exp.cut.off)
			exp.cut = &cut{t.Offset, t.Bytes, t.Reason}
		default:
			exp.cut = nil
		}
	}
	if exp.code != "" && !exp.loose {
		r.check(a.err != nil && string(db.CodeOf(a.err)) == exp.code && errors.Is(a.err, sentinel[exp.code]),
			"open: %v, want %s", a.err, exp.code)
		r.check(exp.errOff < 0 || errOffset(a.err) == exp.errOff, "open: %v, want offset %d", a.err, exp.errOff)
		r.check(exp.cause == nil || errors.Is(a.err, exp.cause), "open: %v, want a cause matching %v", a.err, exp.cause)
		r.check(maps.Equal(a.files, before), "a refused open changed the files")
		r.check(len(a.reports) == 0, "a refused open reported a truncation")
		r.tally["refused:"+exp.code]++
		r.logf("refused as expected: %v", a.err)
		return
	}
	r.check(a.err == nil, "open: %v, want success with %v", a.err, exp.cut)
	want := exp.state.all()
	r.check(equalPairs(a.state, want), "recovered state: %d pairs, model has %d%s", len(a.state), len(want), diff(a.state, want))

	if exp.cut == nil {
		r.tally["clean"]++
		r.check(len(a.reports) == 0 && len(ro.reports) == 0, "unexpected truncation: %+v", a.reports)
		r.check(maps.Equal(a.files, before), "an open with nothing to cut changed the files")
	} else {
		c := exp.cut
		r.tally["cut:"+string(c.reason)]++
		r.check(len(a.reports) == 1, "%d truncation reports, want one: %v", len(a.reports), c)
		t := a.reports[0]
		r.check(t.Offset == c.off && t.Bytes == c.bytes && t.Reason == c.reason && t.Truncated,
			"truncation %+v, want %v", t, c)
		r.check(len(ro.reports) == 1 && ro.reports[0].Truncation == t.Truncation && !ro.reports[0].Truncated && ro.reports[0].Sidecar == "",
			"read-only report %+v, want the same decision, not carried out", ro.reports)
		name := fmt.Sprintf("%s.cut-%d", dbPath, c.off)
		r.check(t.Sidecar == name || strings.HasPrefix(t.Sidecar, name+"."), "sidecar %q, want %s", t.Sidecar, name)
		v, existed := before[t.Sidecar]
		r.check(!existed || a.files[t.Sidecar] == v, "the sidecar %s overwrote an existing file", t.Sidecar)
		if existed {
			r.tally["sidecar-reused"]++
		}
		r.check(bytes.Equal(fss[0].Bytes(t.Sidecar), file[c.off:c.off+c.bytes]), "the sidecar does not hold exactly the cut bytes")
		sd, sp := fss[0].Durable(t.Sidecar)
		r.check(sp == 0 && sd == c.bytes, "the sidecar is not synced (%d durable, %d pending)", sd, sp)
		r.check(bytes.Equal(fss[0].Bytes(dbPath), file[:c.off]), "the file is not cut at %d", c.off)
		for p, v := range before {
			// A temporary sidecar left by a crash mid-copy may be removed, nothing else.
			r.check(p == dbPath || a.files[p] == v || strings.HasSuffix(p, ".tmp") && a.files[p] == 0, "recovery changed %s", p)
		}
		d, p := fss[0].Durable(dbPath)
		r.check(d == c.off && p == 0, "the cut is not synced (%d durable, %d pending)", d, p)
		r.check(fss[0].Synced(t.Sidecar), "the sidecar %s (or its name) is not durable", t.Sidecar)
		for _, p := range fss[0].Paths() {
			r.check(!strings.HasSuffix(p, ".tmp"), "a temporary sidecar %s is left after a cut", p)
		}
	}
	r.check(fss[0].Synced(dbPath), "after a writable open the database file or its name is not durable")
	r.fs, r.d = fss[keep], outs[keep].d
	r.m = exp.state
	end := r.size()
	kept := r.records[:0]
	for _, rec := range r.records {
		if rec.end <= end {
			kept = append(kept, rec)
		}
	}
	r.records = kept
	r.logf("reopened at parallelism %d: %d pairs, %d records, %d bytes", []int{1, 4}[keep], len(a.state), len(r.records), end)
}

// sameContents reports whether two filesystems hold the same files with the same bytes;
// va and vb are their versions, which spare reading the files that did not change.
func sameContents(fa *simfs.FS, va map[string]uint64, fb *simfs.FS, vb map[string]uint64) bool {
	if len(va) != len(vb) {
		return false
	}
	for p, v := range va {
		w, ok := vb[p]
		if !ok || v != w && !bytes.Equal(fa.Bytes(p), fb.Bytes(p)) {
			return false
		}
	}
	return true
}

// delta is what the counters counted since c0 (every field is a count).
func delta(c, c0 simfs.Counters) simfs.Counters {
	v, v0 := reflect.ValueOf(&c).Elem(), reflect.ValueOf(c0)
	for i := range v.NumField() {
		v.Field(i).SetInt(v.Field(i).Int() - v0.Field(i).Int())
	}
	return c
}

func errOffset(err error) int64 {
	var e *recovery.Error
	if errors.As(err, &e) {
		return e.Offset
	}
	return -1
}

// ---- crashes ----

// inflight is a commit the crash or fault interrupted.
type inflight struct {
	base    int64 // file size before its append: where its bytes start
	ops     []op
	written []byte // what its append left in the file before the crash (all of it, or a prefix)
	whole   bool   // written is the complete record (the append finished; only its fsync did not)
}

// expectTail is the outcome of opening a file whose last append was interrupted, given how
// many of its bytes the disk kept and what they are: the rule of evidence, worked out by hand
// for a file with no other damage.
func (r *run) expectTail(in inflight, kept int64, mode simfs.CrashMode) expectation {
	base := in.base
	complete := in.whole && kept == int64(len(in.written)) && mode == simfs.TornTail
	switch {
	case kept == 0:
		return expectation{state: r.m}
	case complete: // every byte made it: the commit is there, acknowledged or not
		return expectation{state: r.m.apply(in.ops)}
	case mode != simfs.TornTail && base == 0:
		// zeros or garbage where the file header should be: not recognisably a database
		return expectation{code: "NOT_A_DATABASE", errOff: 0}
	case mode != simfs.TornTail:
		return expectation{state: r.m, cut: &cut{base, kept, recovery.ReasonDamagedTail}}
	case base == 0 && kept < format.FileHeaderSize:
		return expectation{state: r.m, cut: &cut{0, kept, recovery.ReasonTornHeader}}
	case base == 0 && kept == format.FileHeaderSize:
		return expectation{state: r.m} // a file header and nothing else: an empty database
	case base == 0:
		return expectation{state: r.m, cut: &cut{format.FileHeaderSize, kept - format.FileHeaderSize, recovery.ReasonTornTail}}
	case r.legacy && kept >= format.LegacyHeaderSize:
		// a legacy header has no self-checksum: a length past the end is just damage
		return expectation{state: r.m, cut: &cut{base, kept, recovery.ReasonDamagedTail}}
	}
	return expectation{state: r.m, cut: &cut{base, kept, recovery.ReasonTornTail}}
}

// crashDuringCommit runs a commit during which the machine goes down: its append completes,
// its fsync never does. The disk then keeps, by mode, some of the appended bytes. It returns
// the expected outcome of the reopen, which the caller performs.
func (r *run) crashDuringCommit(mode simfs.CrashMode) expectation {
	in := inflight{base: r.size(), ops: r.nextOps, whole: true}
	if in.ops == nil {
		in.ops = r.opsFitting()
	}
	r.nextOps = nil
	r.fs.CrashOnSync(dbPath, 1)
	err := r.update(in.ops, false)
	r.check(errors.Is(err, db.ErrFailed) && errors.Is(err, simfs.ErrCrashed), "a commit whose fsync crashed: %v", err)
	in.written = r.fs.Bytes(dbPath)[in.base:]
	r.check(len(in.written) > 0, "the interrupted commit appended nothing")
	r.d.Close()
	r.d = nil
	kept := int64(0)
	for _, rep := range r.fs.Crash(mode) {
		r.check(rep.Path == dbPath, "pending bytes in %s at a crash", rep.Path)
		kept = rep.Kept
	}
	r.logf("crash (%v) during a commit at %d: %d of %d bytes kept", mode, in.base, kept, len(in.written))
	exp := r.expectTail(in, kept, mode)
	r.noteInflight(in, exp)
	return exp
}

// noteInflight records the interrupted commit's record when the expected outcome keeps it.
func (r *run) noteInflight(in inflight, exp expectation) {
	if exp.code != "" || exp.cut != nil || len(in.written) == 0 || !in.whole {
		return
	}
	start := in.base
	if start == 0 {
		start = format.FileHeaderSize
	}
	end := in.base + int64(len(in.written))
	if d, p := r.fs.Durable(dbPath); d+p == end {
		r.records = append(r.records, record{start, end, exp.state})
		r.tally["inflight-kept"]++
	}
}

// crashIdle is a crash with nothing in flight: every commit was synced, so nothing changes.
func (r *run) crashIdle() {
	if r.d != nil {
		r.d.Close() // its handle would die in the crash anyway
		r.d = nil
	}
	reps := r.fs.Crash(simfs.CrashMode(r.rng.IntN(3)))
	r.check(len(reps) == 0, "pending bytes at an idle crash: %+v", reps)
	r.logf("idle crash")
}

// finale runs a little more workload after the profile's reopen (appends must continue right
// after what recovery kept), ends with a clean close or an idle crash, and checks the file
// reopens to the model with nothing to cut.
func (r *run) finale() {
	if r.d == nil {
		return
	}
	r.workload(r.rng.IntN(8))
	if r.rng.IntN(2) == 0 {
		r.crashIdle()
	}
	r.reopen(expectation{state: r.m})
	r.checkView()
}
