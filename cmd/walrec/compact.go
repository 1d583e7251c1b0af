package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/streamwal/recovery/db"
)

const compactUsage = `Usage: walrec compact FILE [--json] [--quiet]

Rewrites the database FILE as its live state (db.Compact): one set per live key, in key
order, in records of about a megabyte, in the same format and layout, so the other
implementation opens it too. The new log is written beside the old one as FILE.compact,
fsynced, renamed over FILE, and the directory fsynced: a crash at any instant leaves either
the old log or the new one, whole. It opens FILE as a writer (taking its lock; a torn tail
is cut into a sidecar first, as any open does), and reports the time of a read-only open
before, the compaction's time and throughput, and the time of a read-only open after.

The new log is the same database to everyone else: it keeps FILE's mode, owner and group (run
compact as the database's owner or root; otherwise it refuses with IDENTITY before writing
anything), and through a symbolic link it is the file the link names that is rewritten, in
that file's directory; the link stays.

Exit status:
  0  compacted
  2  recovery refuses the file (it is untouched)
  3  an I/O error, a usage error, LOCKED (another process has the database open), or
     IDENTITY (the new log could not be given FILE's owner and group; FILE is untouched)
`

type compactReport struct {
	File        string  `json:"file"`
	Before      int64   `json:"before_bytes"`
	After       int64   `json:"after_bytes"`
	Pairs       int     `json:"pairs"`
	Records     int     `json:"records"`
	OpenBefore  float64 `json:"open_before_seconds"`
	CompactTime float64 `json:"compact_seconds"`
	CompactMBps float64 `json:"compact_mb_per_second"` // of the old log's size
	OpenAfter   float64 `json:"open_after_seconds"`
}

// cmdCompact is "walrec compact": db.Compact, timed.
func cmdCompact(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("compact")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var of outFlags // no bar is drawn here; --quiet prints nothing on success
	of.register(fs)
	pos, code, ok := parseFlags(fs, compactUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if of.quiet {
		stdout = io.Discard
	}
	path := pos[0]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "walrec compact: %v\n", err)
		if c := db.CodeOf(err); c != "" && c != "IO_ERROR" && c != "INCOMPLETE_READ" && c != "LOCKED" && c != "IDENTITY" && c != "INVALID_ARGUMENT" {
			return exitRefused
		}
		return exitError
	}
	if err := regularFile(path); err != nil { // db.Open would create a missing file
		return fail(err)
	}
	t0 := time.Now()
	d, err := db.OpenContext(ctx, path, db.ReadOnly()) // timed the same way as the open after
	if err != nil {
		return fail(err)
	}
	r := compactReport{File: path, OpenBefore: time.Since(t0).Seconds()}
	d.Close()
	if d, err = db.OpenContext(ctx, path); err != nil {
		return fail(err)
	}
	res, err := d.CompactContext(ctx) // a signal stops it; the old log stays
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	r.Before, r.After, r.Pairs, r.Records = res.Before, res.After, res.Pairs, res.Records
	r.CompactTime = res.Duration.Seconds()
	r.CompactMBps = float64(res.Before) / 1e6 / res.Duration.Seconds()
	t0 = time.Now()
	d, err = db.OpenContext(ctx, path, db.ReadOnly())
	if err != nil {
		return fail(err)
	}
	r.OpenAfter = time.Since(t0).Seconds()
	d.Close()
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: %.1f MiB -> %.1f MiB (%d pairs in %d records)\n", quoteName(path), float64(r.Before)/(1<<20), float64(r.After)/(1<<20), r.Pairs, r.Records)
	fmt.Fprintf(stdout, "open before  %.3f s (read-only)\ncompaction   %.3f s (%.0f MB/s of the old log)\nopen after   %.3f s (read-only)\n",
		r.OpenBefore, r.CompactTime, r.CompactMBps, r.OpenAfter)
	return exitOK
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["compact"] = command{cmdCompact} }
