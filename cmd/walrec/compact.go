package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

const compactUsage = `Usage: walrec compact FILE [--json] [--quiet] [--progress MODE]

Rewrites the database FILE as its live state (db.Compact): one set per live key, in key
order, in records of about a megabyte, in the same format and layout, so the other
implementation opens it too. The new log is written beside the old one as FILE.compact,
fsynced, renamed over FILE, and the directory fsynced: a crash at any instant leaves either
the old log or the new one, whole. It opens FILE as a writer (taking its lock; a torn tail
is cut into a sidecar first, as any open does, and reported), and reports the time of a
read-only open before, the compaction's time and throughput, and the time of a read-only
open after.

The new log is the same database to everyone else: it keeps FILE's mode, owner and group (run
compact as the database's owner or root; otherwise it refuses with IDENTITY before writing
anything), and through a symbolic link it is the file the link names that is rewritten, in
that file's directory; the link stays.

The report (with --json one "report" line, on failure too) says what was done: before_bytes
(FILE's size before anything, a cut included), cut_offset, cut_bytes and sidecar (the torn
tail the writer's open cut first, or null), compacted (whether the new log is in FILE's
place), after_bytes, pairs, records, and the times (null for a step not reached).

Here: 0 compacted; 2 recovery refuses FILE (corrupt, ...): nothing was compacted and FILE is
untouched ("walrec salvage" copies what verifies, "walrec recover --mode point-in-time" cuts
from the damage on); 3 an I/O error, a usage error, LOCKED (another process has the database
open), or IDENTITY (the new log could not be given FILE's owner and group; FILE is
untouched). A signal before the rename removes the new log and leaves the old one (with the
cut of a torn tail, if the open had made it: the report says so); one after it leaves the
compacted log, and the report says that.

` + exitCodesHelp

// compactReport is compact's report.
type compactReport struct {
	jsonHead
	File        string   `json:"file"`
	FileHex     *string  `json:"file_hex"`
	Before      *int64   `json:"before_bytes"` // FILE's size before anything (a cut included); null if it could not be read
	CutOffset   *int64   `json:"cut_offset"`   // the torn tail the writer's open cut first, null when none
	CutBytes    *int64   `json:"cut_bytes"`
	Sidecar     *string  `json:"sidecar"` // the file holding the cut bytes
	SidecarHex  *string  `json:"sidecar_hex"`
	Compacted   bool     `json:"compacted"` // the new log is in FILE's place
	After       *int64   `json:"after_bytes"`
	Pairs       *int     `json:"pairs"`
	Records     *int     `json:"records"`
	OpenBefore  *float64 `json:"open_before_seconds"`
	CompactTime *float64 `json:"compact_seconds"`
	CompactMBps *float64 `json:"compact_mb_per_second"` // of the log compacted (after a cut)
	OpenAfter   *float64 `json:"open_after_seconds"`
	outcome

	dones []func() // the progress of the opens, to end
}

// stopProgress ends the progress of the opens so far.
func (r *compactReport) stopProgress() {
	for _, d := range r.dones {
		d()
	}
	r.dones = nil
}

// compactHints are compact's words for what to do, by code: no flag compact does not have.
var compactHints = map[walerr.Code]string{
	walerr.CorruptWAL: "nothing was compacted and the file is untouched; acknowledged records may follow the damage: " +
		"walrec salvage FILE --output COPY copies every record that verifies, and walrec recover --mode point-in-time FILE cuts from the damage on (keeping the bytes in a sidecar)",
	walerr.RecordTooLarge:     "nothing was compacted and the file is untouched; a database opens records of at most 1 GiB",
	walerr.NotADatabase:       "nothing was compacted and the file is untouched",
	walerr.UnsupportedVersion: "nothing was compacted and the file is untouched",
	walerr.Identity:           "nothing was compacted and the file is untouched; run walrec compact as the file's owner (or root)",
}

// cmdCompact is "walrec compact": db.Compact, timed.
func cmdCompact(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("compact")
	asJSON := fs.Bool("json", false, "print the report as a JSON line")
	var of outFlags // progress: the opens' recovery
	of.register(fs)
	pos, code, ok := parseFlags(ctx, fs, compactUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	path := pos[0]
	r := compactReport{jsonHead: head("compact", "report"), File: path, FileHex: nameHex(&path)}
	out := func() int {
		return reportOut(ctx, stdout, stderr, "compact", path, &r.outcome, *asJSON, of.quiet, &r, r.human, r.doneText())
	}
	fail := func(err error) int {
		r.fail(ctx, err, compactHints)
		if d := r.doneText(); d != "" {
			r.Detail += optString("; before it: " + d)
		}
		return out()
	}
	if err := regularFile(path); err != nil { // db.Open would create a missing file
		return fail(err)
	}
	if fi, err := os.Stat(path); err == nil {
		r.Before = ptr(fi.Size())
	}
	opened := func(desc string) db.Option { // an open's recovery, with its progress
		p := of.progress(stderr, desc, path)
		r.dones = append(r.dones, p.done)
		return db.WithRecovery(recovery.WithProgress(p.callback()))
	}
	defer r.stopProgress()
	t0 := time.Now()
	d, err := db.OpenContext(ctx, path, db.ReadOnly(), opened("open before")) // timed the same way as the open after
	r.stopProgress()
	if err != nil {
		return fail(err)
	}
	r.OpenBefore = ptr(time.Since(t0).Seconds())
	d.Close()
	d, err = db.OpenContext(ctx, path, opened("open"), db.OnTruncate(func(t db.TruncationReport) {
		if t.Truncated {
			r.CutOffset, r.CutBytes = ptr(t.Offset), ptr(t.Bytes)
			if t.Sidecar != "" {
				r.Sidecar, r.SidecarHex = ptr(t.Sidecar), nameHex(&t.Sidecar)
			}
		}
	}))
	r.stopProgress()
	if err != nil {
		r.cutBySize(path)
		return fail(err)
	}
	pauseHere(ctx, "compact-opened")
	if ctx.Err() != nil { // between the steps: the compaction does not begin
		d.Close()
		return fail(walerr.New(walerr.Canceled, -1, "stopped before the compaction began; the new log was not written"))
	}
	res, err := d.CompactContext(ctx) // a signal stops it; the old log stays
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	r.Compacted = true
	r.After, r.Pairs, r.Records = ptr(res.After), ptr(res.Pairs), ptr(res.Records)
	r.CompactTime = ptr(res.Duration.Seconds())
	r.CompactMBps = ptr(float64(res.Before) / 1e6 / res.Duration.Seconds())
	pauseHere(ctx, "compact-renamed")
	if ctx.Err() == nil { // a measure: a signal now skips it, and the report says what was done
		t0 = time.Now()
		d, err = db.OpenContext(ctx, path, db.ReadOnly(), opened("open after"))
		r.stopProgress()
		if err != nil && ctx.Err() == nil {
			return fail(err)
		}
		if err == nil {
			r.OpenAfter = ptr(time.Since(t0).Seconds())
			d.Close()
		}
	}
	r.succeed("compacted", exitOK)
	return out()
}

// cutBySize notices a cut the writer's open made without reporting it (it failed after the
// cut, before OnTruncate): the file is shorter than it was.
func (r *compactReport) cutBySize(path string) {
	if r.CutOffset != nil || r.Before == nil {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() < *r.Before {
		r.CutOffset, r.CutBytes = ptr(fi.Size()), ptr(*r.Before-fi.Size())
	}
}

// doneText says what compact changed, "" for nothing.
func (r *compactReport) doneText() string {
	var done []string
	if r.CutOffset != nil {
		s := fmt.Sprintf("the writer's open cut a torn tail (%d bytes at offset %d)", *r.CutBytes, *r.CutOffset)
		if r.Sidecar != nil {
			s = fmt.Sprintf("the writer's open cut a torn tail (%d bytes at offset %d, kept in %s)", *r.CutBytes, *r.CutOffset, quoteName(*r.Sidecar))
		}
		done = append(done, s)
	}
	if r.Compacted {
		done = append(done, fmt.Sprintf("the log was compacted (%d -> %d bytes)", *r.Before, *r.After))
	}
	return strings.Join(done, "; ")
}

// human is the text report of a compaction (a failure is the line on stderr).
func (r *compactReport) human(w io.Writer) {
	if !r.Compacted {
		return
	}
	fmt.Fprintf(w, "%s: %s -> %s (%s in %s)\n", quoteName(r.File), bytesHuman(*r.Before), bytesHuman(*r.After), plural(*r.Pairs, "pair"), plural(*r.Records, "record"))
	if r.CutOffset != nil {
		kept := ""
		if r.Sidecar != nil {
			kept = ", kept in " + quoteName(*r.Sidecar)
		}
		fmt.Fprintf(w, "cut first    a torn tail of %d bytes at offset %d, as any writer's open does%s\n", *r.CutBytes, *r.CutOffset, kept)
	}
	fmt.Fprintf(w, "open before  %.3f s (read-only)\ncompaction   %.3f s (%.0f MB/s of the old log)\n", *r.OpenBefore, *r.CompactTime, *r.CompactMBps)
	if r.OpenAfter != nil {
		fmt.Fprintf(w, "open after   %.3f s (read-only)\n", *r.OpenAfter)
	}
	if r.Signal != nil {
		fmt.Fprintf(w, "%s came once the log was compacted: it stays compacted (exit %d)\n", *r.Signal, r.Exit)
	}
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["compact"] = command{cmdCompact} }
