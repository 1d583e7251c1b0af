package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/streamwal/recovery/db"
)

const sidecarsUsage = `Usage: walrec sidecars FILE [--clear] [--json] [--quiet]

Lists the sidecars of the database FILE: the files FILE.cut-OFFSET (and FILE.cut-OFFSET.N)
beside it (beside the file a symbolic link names), each holding bytes that recovery cut from
the log at OFFSET, copied there and synced before the cut. A file ending in .tmp is a copy a
crash interrupted (partial); no cut was made after it. The database never deletes a sidecar;
repeated crashes at one offset that cut the same bytes share one.

FILE must be the database file: a directory, a FIFO, a device or a socket is refused (exit
3). A FILE that does not exist is listed all the same when sidecars of it remain (the report
says the database file is missing: the bytes of a deleted database can still be found), and
refused (exit 3) when none do.

With --clear it deletes them (after listing them) and syncs the directory. It takes the
database's lock while it works, so it fails with LOCKED while a writer has FILE open. The
bytes in them are gone: copy what you need first.

With --json: one "sidecar" line each (path, path_hex, offset, size, partial, removed), then
the "report" line (database_missing, sidecars, bytes, removed).

Here: 0 listed (none is a listing too) or cleared; 3 an I/O error, a usage error, a FILE that
is not a database file (or missing, with no sidecars), or LOCKED. Sidecars removed before a
signal or a failure stay removed, and the report (for SIGPIPE, a line on stderr) says how many.

` + exitCodesHelp

// sidecarLine is one --json "sidecar" line.
type sidecarLine struct {
	jsonHead
	File    string  `json:"file"`
	FileHex *string `json:"file_hex"`
	Path    string  `json:"path"`
	PathHex *string `json:"path_hex"` // the name's bytes in hex when it is not UTF-8, else null
	Offset  int64   `json:"offset"`
	Size    int64   `json:"size"`
	Partial bool    `json:"partial"`
	Removed bool    `json:"removed"`
}

// sidecarsReport is the "report" line.
type sidecarsReport struct {
	jsonHead
	File            string  `json:"file"`
	FileHex         *string `json:"file_hex"`
	DatabaseMissing *bool   `json:"database_missing"` // null when FILE was refused
	Sidecars        *int    `json:"sidecars"`         // how many were found (null when none could be listed)
	Bytes           *int64  `json:"bytes"`
	Removed         *int    `json:"removed"` // --clear: how many were deleted, else null
	outcome
}

// cmdSidecars is "walrec sidecars": db.Sidecars, and db.RemoveSidecars with --clear.
func cmdSidecars(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sidecars")
	clear := fs.Bool("clear", false, "delete the sidecars (takes the database's lock)")
	asJSON := fs.Bool("json", false, `print one "sidecar" JSON line each, then the report`)
	var of outFlags // no progress here: listing is quick; --quiet prints nothing on success
	of.registerQuiet(fs)
	pos, code, ok := parseFlags(ctx, fs, sidecarsUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	return listSidecars(ctx, pos[0], *clear, *asJSON, of.quiet, stdout, stderr)
}

func listSidecars(ctx context.Context, path string, clear, asJSON, quiet bool, stdout, stderr io.Writer) int {
	r := sidecarsReport{jsonHead: head("sidecars", "report"), File: path, FileHex: nameHex(&path)}
	var list []db.Sidecar
	var err error
	missing := false
	switch fi, serr := os.Stat(path); {
	case serr == nil && !fi.Mode().IsRegular():
		err = fmt.Errorf("is %s, not a database file; give the database's own path", kindOf(fi))
	case serr != nil && !errors.Is(serr, fs.ErrNotExist):
		err = serr
	default:
		missing = serr != nil
		r.DatabaseMissing = ptr(missing)
		if clear {
			list, err = db.RemoveSidecars(path)
			r.Removed = ptr(len(list))
		} else {
			list, err = db.Sidecars(path)
		}
		if missing && err == nil && len(list) == 0 {
			err = errors.New("no such file, and no sidecars of it")
		}
	}
	var total int64
	for _, s := range list {
		total += s.Size
	}
	if r.DatabaseMissing != nil && (err == nil || len(list) > 0) {
		r.Sidecars, r.Bytes = ptr(len(list)), ptr(total)
	}
	if err != nil {
		r.fail(ctx, err, nil)
	} else if clear {
		r.succeed("cleared", exitOK)
	} else {
		r.succeed("listed", exitOK)
	}
	done := ""
	if clear && len(list) > 0 {
		done = fmt.Sprintf("removed %s (%d bytes)", plural(len(list), "sidecar"), total)
	}
	if asJSON && !quiet {
		w := &errWriter{w: stdout}
		for _, s := range list {
			writeJSON(w, sidecarLine{head("sidecars", "sidecar"), path, r.FileHex, s.Path, nameHex(&s.Path), s.Offset, s.Size, s.Partial, clear})
		}
		if w.err != nil {
			return writeFailed(ctx, stderr, "sidecars", path, r.Exit, w.err, done)
		}
	}
	return reportOut(ctx, stdout, stderr, "sidecars", path, &r.outcome, asJSON, quiet, &r, func(w io.Writer) {
		verb := ""
		if clear {
			verb = "removed "
		}
		for _, s := range list {
			note := ""
			if s.Partial {
				note = "  (partial: a copy a crash interrupted)"
			}
			fmt.Fprintf(w, "%s%s  offset %d  %d bytes%s\n", verb, quoteName(s.Path), s.Offset, s.Size, note)
		}
		if r.Sidecars != nil {
			fmt.Fprintf(w, "%s, %d bytes\n", plural(len(list), "sidecar"), total)
		}
		if missing && len(list) > 0 {
			fmt.Fprintf(w, "note: the database file %s is missing; these sidecars are what is left of it\n", quoteName(path))
		}
		if r.Signal != nil && r.Outcome != outCanceled {
			fmt.Fprintf(w, "%s came once this was done (exit %d)\n", *r.Signal, r.Exit)
		}
	}, done)
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["sidecars"] = command{cmdSidecars} }
