package dst

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
	"github.com/streamwal/recovery/format"
)

// profile is one kind of trouble injected after a seeded workload.
type profile struct {
	name string
	fn   func(*run)
	// must lists outcomes (see run.tally) that any run of seeds 0..N-1, N >= mustSeeds (the
	// default run has 50), must have seen at least once, so the suite cannot quietly stop
	// exercising what it claims to.
	must []string
}

var profiles = []profile{
	{"torn", profTorn, []string{"cut:torn_tail", "cut:torn_header", "inflight-kept", "clean"}},
	{"debris", profDebris, []string{"cut:damaged_tail"}},
	{"damaged-tail", profDamagedTail, []string{"cut:damaged_tail", "refused:CORRUPT_WAL"}},
	{"mid-log", profMidLog, []string{"refused:CORRUPT_WAL", "cut:corrupt", "refused:NOT_A_DATABASE"}},
	{"short-read", profShortRead, []string{"refused:INCOMPLETE_READ"}},
	{"chunked-read", profChunkedRead, []string{"cut:torn_tail", "clean"}},
	{"read-fault", profReadFault, []string{"refused:IO_ERROR"}},
	{"append-fault", profAppendFault, []string{"cut-back", "cut-back-failed", "clean", "cut:damaged_tail", "reader"}},
	{"open-crash", profOpenCrash, []string{"open-crashed", "cut-survived", "cut-undone", "sidecar-reused", "cut:torn_tail"}},
	{"enospc", profNoSpace, []string{"no-space", "clean"}},
	{"compact", profCompact, []string{"compacted", "compact-crashed", "compact-carried", "clean"}},
	{"embedded", profEmbedded, []string{"cut:torn_tail", "embedded-torn"}},
}

// workloadSize: usually a few dozen transactions, sometimes none (so that the trouble hits
// the very first commit of a new file).
func (r *run) workloadSize() int {
	if r.rng.IntN(8) == 0 {
		return 0
	}
	return 5 + r.rng.IntN(40)
}

// Crash with a torn tail: the machine goes down during a commit (after its append, before its
// fsync returns) and the disk keeps a seeded prefix of the append, or the crash comes between
// commits. Recovered state = the model (plus the interrupted commit if every byte of it made
// it); a partial append is cut into a sidecar.
func profTorn(r *run) {
	r.workload(r.workloadSize())
	if r.rng.IntN(10) < 7 {
		exp := r.crashDuringCommit(simfs.TornTail)
		r.reopen(exp)
	} else {
		r.crashIdle()
		r.reopen(expectation{state: r.m})
	}
	r.finale()
}

// Crash leaving zeros or garbage where the last append should be (the size persisted, the
// data did not). The debris is cut into a sidecar; over the file header it is not a database.
func profDebris(r *run) {
	r.workload(r.workloadSize())
	mode := simfs.ZeroTail
	if r.rng.IntN(2) == 0 {
		mode = simfs.GarbageTail
	}
	exp := r.crashDuringCommit(mode)
	r.reopen(exp)
	r.finale()
}

// pickByte chooses a byte of rec to damage and says which field it is in.
func (r *run) pickByte(rec record) (int64, string) {
	x := r.rng.IntN(100)
	switch {
	case r.legacy && x < 20:
		return rec.start + r.rng.Int64N(4), "length"
	case r.legacy && x < 40:
		return rec.start + 4 + r.rng.Int64N(4), "crc"
	case r.legacy:
		return rec.start + format.LegacyHeaderSize + r.rng.Int64N(rec.end-rec.start-format.LegacyHeaderSize), "payload"
	case x < 15:
		return rec.start + r.rng.Int64N(4), "length"
	case x < 30:
		return rec.start + 4 + r.rng.Int64N(4), "selfcheck"
	case x < 45:
		return rec.start + 8 + r.rng.Int64N(4), "crc"
	}
	return rec.start + format.V1HeaderSize + r.rng.Int64N(rec.end-rec.start-format.V1HeaderSize), "payload"
}

func (r *run) mask() byte {
	if r.rng.IntN(2) == 0 {
		return 1 << r.rng.IntN(8)
	}
	return byte(1 + r.rng.IntN(255))
}

// corrupt closes the database and damages one byte of rec on disk.
func (r *run) corrupt(rec record) string {
	if r.d != nil {
		r.d.Close()
		r.d = nil
	}
	off, field := r.pickByte(rec)
	m := r.mask()
	r.fs.Corrupt(dbPath, off, m)
	r.logf("corrupt byte %d (%s of the record at %d) with mask %#x", off, field, rec.start, m)
	return field
}

func (r *run) stateBefore(i int) model {
	if i == 0 {
		return model{}
	}
	return r.records[i-1].after
}

// Damaged tail: one byte of the last record rots. With nothing written after it, the record
// is cut (copied to a sidecar first) and the state is the model without that commit. Except:
// a v1 record whose header self-checksum alone rotted was provably written whole (its payload
// checksum holds), so recovery refuses rather than guess; and a legacy file's first record is
// how the file is recognised at all.
func profDamagedTail(r *run) {
	r.workload(r.workloadSize())
	r.ensureRecords(1)
	i := len(r.records) - 1
	last := r.records[i]
	field := r.corrupt(last)
	switch {
	case r.legacy && last.start == 0:
		r.reopen(expectation{code: "NOT_A_DATABASE", errOff: 0})
		return
	case !r.legacy && field == "selfcheck":
		r.reopen(expectation{code: "CORRUPT_WAL", errOff: last.start})
		return
	}
	r.reopen(expectation{state: r.stateBefore(i), cut: &cut{last.start, last.end - last.start, recovery.ReasonDamagedTail}})
	r.finale()
}

// Mid-log corruption: a byte of a record that has records after it rots. They are evidence
// that it was acknowledged, so open refuses with CORRUPT_WAL at its offset and the file is
// untouched. Then point-in-time mode salvages the records before it (cut, reported, sidecar).
func profMidLog(r *run) {
	r.workload(r.workloadSize())
	r.ensureRecords(2)
	i := r.rng.IntN(len(r.records) - 1)
	rec := r.records[i]
	r.corrupt(rec)
	if r.legacy && rec.start == 0 {
		r.reopen(expectation{code: "NOT_A_DATABASE", errOff: 0})
		return
	}
	r.reopen(expectation{code: "CORRUPT_WAL", errOff: rec.start})
	r.extra = []recovery.Option{recovery.WithMode(recovery.PointInTime)}
	size := r.size()
	r.reopen(expectation{state: r.stateBefore(i), cut: &cut{rec.start, size - rec.start, recovery.ReasonCorrupt}})
	r.extra = nil
	r.finale()
}

// readFaultProfile: a read of one seeded byte of the file fails (short, or with an I/O
// error) until the fault is cleared. Open fails with the given code, file untouched, then
// succeeds once the fault is gone.
func (r *run) readFault(short bool) {
	r.workload(r.workloadSize())
	r.ensureRecords(1)
	if r.d != nil {
		r.d.Close()
		r.d = nil
	}
	off := r.rng.Int64N(r.records[len(r.records)-1].end)
	exp := expectation{errOff: off}
	if short {
		r.fs.ShortReads(dbPath, off)
		exp.code = "INCOMPLETE_READ"
		exp.fired = func(c simfs.Counters) bool { return c.ShortReads > 0 }
	} else {
		r.fs.FailReads(dbPath, off)
		exp.code = "IO_ERROR"
		exp.fired = func(c simfs.Counters) bool { return c.ReadFaults > 0 }
		exp.cause = simfs.ErrInjected
	}
	r.logf("read fault (short %v) at byte %d", short, off)
	r.reopen(exp)
	r.fs.ClearFaults()
	r.reopen(expectation{state: r.m})
	r.finale()
}

func profShortRead(r *run) { r.readFault(true) }
func profReadFault(r *run) { r.readFault(false) }

// Chunked reads: every read delivers a few bytes with a nil error. Recovery reads again and
// succeeds, through a torn tail's classification and sidecar copy too.
func profChunkedRead(r *run) {
	r.workload(r.workloadSize())
	var exp expectation
	if r.rng.IntN(2) == 0 {
		exp = r.crashDuringCommit(simfs.TornTail)
	} else {
		r.crashIdle()
		exp = expectation{state: r.m}
	}
	// Tiny chunks (headers read a few bytes at a time) on small files; on larger ones, chunks
	// that are still far smaller than a read (a byte at a time through 100 KiB is just slow).
	limit := []int{1 + r.rng.IntN(16), 64, 512}[r.rng.IntN(3)]
	if r.size() > 16<<10 {
		limit = 256 << r.rng.IntN(5)
	}
	r.fs.ChunkReads(limit)
	if r.size() > int64(2*limit)+format.FileHeaderSize {
		exp.fired = func(c simfs.Counters) bool { return c.ChunkedReads > 0 }
	}
	r.logf("reads in chunks of at most %d bytes", limit)
	r.reopen(exp)
	r.finale() // still chunked
}

// Append faults: an append fails part way (or its fsync fails, losing the pages it should have
// written, as Linux does). The database latches: that commit and every later write fail with
// FAILED and write nothing; reads go on and show the model; a reader beside it too; a second
// writer is still locked out. The writer removes the failed commit's bytes (truncate back,
// sync), so the reopen, with or without a crash, finds the model: a commit that returned an
// error never comes back. Sometimes that clean-up fails too (its fsync): then a crash may
// bring back debris at the end, which the reopen cuts into a sidecar, still with the model.
func profAppendFault(r *run) {
	r.workload(r.workloadSize())
	in := inflight{base: r.size(), ops: r.opsFitting()}
	syncFault := r.rng.IntN(10) < 3
	if syncFault {
		r.fs.FailSync(dbPath, 1)
	} else {
		r.fs.FailAppend(dbPath, 1)
	}
	cleanupFails := r.rng.IntN(4) == 0
	if cleanupFails { // the next fsync, the clean-up's, fails too
		r.fs.FailSync(dbPath, 1)
	}
	err := r.update(in.ops, false)
	r.check(errors.Is(err, db.ErrFailed) && errors.Is(err, simfs.ErrInjected) && db.CodeOf(err) == "FAILED",
		"a commit whose append or fsync failed: %v", err)
	c := r.fs.Counters()
	want := int64(1)
	if cleanupFails {
		want = 2
	}
	r.check(c.AppendFaults+c.SyncFaults == want, "the faults did not fire: %+v", c)
	r.check(r.size() == in.base, "the failed commit left %d bytes in the file", r.size()-in.base)
	if d, p := r.fs.Durable(dbPath); !cleanupFails {
		r.check(d == in.base && p == 0, "the clean-up is not durable: %d durable, %d pending", d, p)
		r.tally["cut-back"]++
	} else {
		r.check(strings.Contains(err.Error(), "may or may not survive"), "a failed clean-up not reported: %v", err)
		r.tally["cut-back-failed"]++
	}
	r.logf("%s fault at %d, clean-up fails %v", map[bool]string{true: "fsync", false: "append"}[syncFault], in.base, cleanupFails)

	size := r.size()
	for range 1 + r.rng.IntN(2) {
		err := r.update(r.opsFitting(), false)
		r.check(errors.Is(err, db.ErrFailed) && errors.Is(err, simfs.ErrInjected), "a write after the failure: %v", err)
	}
	r.check(r.size() == size, "a latched database wrote")
	r.checkView()
	r.checkReader()
	_, err = db.Open(dbPath, db.WithFS(r.fs))
	r.check(errors.Is(err, db.ErrLocked), "a second writer beside the latched one: %v", err)

	r.d.Close()
	r.d = nil
	exp := expectation{state: r.m}
	if r.rng.IntN(2) == 0 {
		reps := r.fs.Crash(simfs.TornTail)
		r.logf("crash: %+v", reps)
		if cleanupFails {
			exp = expectation{state: r.m, loose: true, cut: &cut{off: in.base}, code: "NOT_A_DATABASE"}
		} else {
			r.check(len(reps) == 0, "changes not synced at the crash: %+v", reps)
		}
	}
	r.reopen(exp)
	r.finale()
}

// Crashes during Open: a crash during a commit leaves a torn tail, then the machine goes down
// at a seeded step of each Open that cuts it (creating the temporary sidecar, filling it,
// syncing it, renaming it, syncing the directory, truncating, syncing the cut), again and
// again at the same offset. After every crash: if the file lost its tail, a durable sidecar
// holds exactly those bytes; sidecars of identical bytes are one file; the last open
// recovers the model.
func profOpenCrash(r *run) {
	r.workload(r.workloadSize())
	exp := r.crashDuringCommit(simfs.TornTail)
	if exp.cut == nil || exp.code != "" {
		r.reopen(exp) // nothing to cut: an ordinary reopen
		r.finale()
		return
	}
	c := exp.cut
	tail := r.fs.Bytes(dbPath)[c.off:]
	// How many changes a whole Open makes, on a copy.
	probe := r.fs.Clone()
	c0 := probe.Counters()
	d, err := db.Open(dbPath, r.opts(probe, 1)...)
	r.check(err == nil, "open a copy: %v", err)
	d.Close()
	steps := int(probe.Counters().Changes - c0.Changes)
	for round := range 1 + r.rng.IntN(4) {
		k := 1 + r.rng.IntN(steps)
		r.fs.CrashAtChange(k)
		d, err := db.Open(dbPath, r.opts(r.fs, 1+r.rng.IntN(4))...)
		if err == nil { // the crash point was past this open's changes (a sidecar reused)
			d.Close()
		} else {
			r.check(errors.Is(err, simfs.ErrCrashed), "an open that crashed at change %d of %d: %v", k, steps, err)
			r.tally["open-crashed"]++
		}
		r.fs.ClearFaults()
		reps := r.fs.Crash(simfs.TornTail)
		size := r.size()
		r.logf("round %d: crash at change %d of %d: file %d bytes, %+v", round, k, steps, size, reps)
		// Sidecars for this offset: at most one (the bytes are the same every time), no
		// partial one under a sidecar's name.
		base := fmt.Sprintf("%s.cut-%d", dbPath, c.off)
		var sidecars []string
		for _, p := range r.fs.Paths() {
			if p == base || strings.HasPrefix(p, base+".") && !strings.HasSuffix(p, ".tmp") {
				sidecars = append(sidecars, p)
			}
		}
		r.check(len(sidecars) <= 1, "repeated crashes at one offset left %d sidecars: %v", len(sidecars), sidecars)
		for _, p := range sidecars {
			r.check(bytes.Equal(r.fs.Bytes(p), tail), "the sidecar %s does not hold the cut bytes", p)
		}
		switch size {
		case c.off + c.bytes:
			r.tally["cut-undone"]++
		case c.off:
			r.check(len(sidecars) == 1, "the tail was cut but no sidecar holds it: the bytes are lost")
			r.tally["cut-survived"]++
			if d, p := r.fs.Durable(dbPath); d != c.off || p != 0 {
				r.failf("after a crash everything is durable")
			}
			r.reopen(expectation{state: exp.state})
			r.finale()
			return
		default:
			r.failf("after a crash during open the file has %d bytes: neither %d nor %d", size, c.off+c.bytes, c.off)
		}
	}
	r.reopen(exp)
	r.finale()
}

// A full disk: a commit's append runs out of space part way. The writer removes its torn
// bytes and latches; the reopen on the still full disk succeeds with nothing to cut (it would
// need room for a sidecar), and so does the next one, after space is freed, with writes.
func profNoSpace(r *run) {
	r.workload(r.workloadSize())
	base := r.size()
	ops := r.opsFitting()
	recSize := int64(format.V1HeaderSize) + payloadSize(ops)
	switch {
	case base == 0:
		recSize += format.FileHeaderSize
	case r.legacy:
		recSize = format.LegacyHeaderSize + payloadSize(ops)
	}
	r.fs.SetCapacity(max(r.fs.Used()+r.rng.Int64N(recSize), 1)) // 0 would mean no limit
	err := r.update(ops, false)
	r.check(errors.Is(err, db.ErrFailed) && errors.Is(err, syscall.ENOSPC), "a commit on a full disk: %v", err)
	r.check(r.size() == base && r.fs.Counters().NoSpace == 1, "the failed append left %d bytes", r.size()-base)
	r.tally["no-space"]++
	r.checkReader()
	r.d.Close()
	r.d = nil
	if r.rng.IntN(2) == 0 {
		r.crashIdle()
	}
	r.reopen(expectation{state: r.m}) // the disk is still full
	r.fs.SetCapacity(0)
	r.finale()
}

// Values that embed records: a crash tears a commit whose value holds whole, valid records
// (a log inside a value). The torn record's header checks out, so every byte after it is its
// own unfinished payload: it is cut as a torn tail, never read as evidence of a later append.
func profEmbedded(r *run) {
	r.embed = true
	r.workload(r.workloadSize())
	for {
		ops := []op{{k: r.key(), v: r.embeddedLog() + r.embeddedLog()}}
		ops = append(ops, r.ops()...)
		if payloadSize(ops) <= r.maxRecord {
			r.nextOps = ops
			break
		}
	}
	exp := r.crashDuringCommit(simfs.TornTail)
	if exp.cut != nil && exp.cut.bytes > int64(format.V1HeaderSize) {
		r.tally["embedded-torn"]++
	}
	r.reopen(exp)
	r.finale()
}

// Compaction: the log is rewritten as the live pairs, sometimes with commits made while the
// new file is synced (carried over before the switch), sometimes with the machine going down
// at a seeded step (creating the new file, writing, syncing, carrying, renaming, syncing the
// directory) in a seeded crash mode. The reopen finds the model, nothing to cut: the old log
// or the new one, whole, never a mix and never less.
func profCompact(r *run) {
	r.workload(r.workloadSize())
	crash := r.rng.IntN(4) != 0
	carry := r.rng.IntN(2) == 0
	if carry {
		r.fs.OnSync(dbPath+".compact", func() {
			for range 1 + r.rng.IntN(3) {
				r.commit(r.opsFitting(), false)
			}
			r.tally["compact-carried"]++
			if crash {
				r.fs.CrashAtChange(1 + r.rng.IntN(6)) // what is left: carry, sync, rename, directory sync
			}
		})
	} else if crash {
		probe := r.fs.Clone()
		d, err := db.Open(dbPath, r.opts(probe, 1)...)
		r.check(err == nil, "open a copy: %v", err)
		c0 := probe.Counters()
		_, err = d.Compact()
		r.check(err == nil, "compact a copy: %v", err)
		d.Close()
		steps := int(probe.Counters().Changes - c0.Changes)
		r.fs.CrashAtChange(1 + r.rng.IntN(steps))
	}
	res, err := r.d.Compact()
	r.fs.ClearFaults()
	r.records = nil // offsets change with the rewrite
	switch {
	case err == nil:
		r.check(res.After == r.size() && (carry || res.Pairs == len(r.m)) && (!carry || res.Carried > 0), "compaction %+v: file %d bytes, model %d pairs", res, r.size(), len(r.m))
		r.check(!r.fs.Exists(dbPath+".compact") && r.fs.Synced(dbPath), "after a compaction: %v", r.fs.Paths())
		r.tally["compacted"]++
		r.logf("compacted: %+v", res)
		r.checkView()
	default:
		r.check(crash && errors.Is(err, simfs.ErrCrashed), "compaction: %v", err)
		r.tally["compact-crashed"]++
		r.d.Close()
		r.d = nil
		mode := simfs.CrashMode(r.rng.IntN(3))
		reps := r.fs.Crash(mode)
		r.logf("crash (%v) during a compaction: %+v", mode, reps)
	}
	r.reopen(expectation{state: r.m})
	r.finale()
}
