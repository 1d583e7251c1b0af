package main

import (
	"context"
	"io"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
)

const recoverUsage = `Usage: walrec recover FILE [--mode tolerate|strict|point-in-time] [--json]
                      [--max-record-size N] [--parallelism N]

Does the repair a database open does, and nothing else: it opens FILE with the database
package (db.Open, taking the writer's lock), lets recovery cut a torn or damaged tail (in
point-in-time mode: everything from the first bad record on), and closes it. The cut bytes
are first copied to a sidecar file beside the database, FILE.cut-OFFSET, and synced: no byte
is destroyed. A file recovery refuses is left untouched. FILE must exist: recover never
creates a database.

It prints the same report as "walrec verify", plus truncated (whether a cut was made) and
sidecar (the file holding the cut bytes, or null) with --json.

Exit status:
  0  the file now opens cleanly (after a reported cut or not)
  2  refused (corrupt, not a database, unsupported version, a record over the limit, or a
     tail in strict mode): the file is untouched
  3  an I/O error (a short read included), a usage error, or LOCKED: another process has
     the database open (close it first; "walrec verify" reads it without a lock)
`

func cmdRecover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("recover")
	var rf recoveryFlags
	rf.register(fs, true, 0)
	pos, code, ok := parseFlags(fs, recoverUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	rr := recoverFile(ctx, pos[0], &rf, newProgress(stderr, "recover"))
	return emit(stdout, stderr, "recover", &rr.report, &rr, rf.json)
}

func recoverFile(ctx context.Context, path string, rf *recoveryFlags, p *progress) recoverReport {
	mode := recovery.Mode(rf.mode)
	// db.Open creates a missing file: check first, so that a typo never makes a database.
	if err := regularFile(path); err != nil {
		return recoverReport{report: openErrorReport(path, mode, err)}
	}
	ropts := append(rf.options(), recovery.WithProgress(p.callback()))
	d, err := db.Open(path,
		db.WithRecovery(ropts...),
		db.WithMaxRecordSize(int64(rf.maxRecord)),
		db.WithContext(ctx))
	p.done()
	if err != nil {
		// Nothing was cut. For the report's statistics (and, in strict mode, the name of the
		// tail it refused), recover the file again read-only: same decision, no lock, no write.
		r := newReport(path, mode, recovery.Result{}, err)
		if recovery.IsCorruption(err) {
			if v := verifyFile(ctx, path, rf, nil, nil); v.Code != nil && *v.Code == *r.Code {
				v.readOnly = false
				r = v
			}
		}
		return recoverReport{report: r}
	}
	res, tr := d.Recovery(), d.Truncation()
	cerr := d.Close()
	r := newReport(path, mode, res, nil)
	rr := recoverReport{report: r}
	if tr != nil {
		rr.Truncated = tr.Truncated
		if tr.Sidecar != "" {
			rr.Sidecar = ptr(tr.Sidecar)
		}
		rr.Exit = exitOK
	}
	if cerr != nil {
		rr.Outcome, rr.Exit, rr.Error, rr.Detail = outIO, exitError, ptr(cerr.Error()), cerr.Error()
	}
	return rr
}
