package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/streamwal/recovery/db"
)

const sidecarsUsage = `Usage: walrec sidecars FILE [--clear] [--json]

Lists the sidecars of the database FILE: the files FILE.cut-OFFSET (and FILE.cut-OFFSET.N)
beside it, each holding bytes that recovery cut from the log at OFFSET, copied there and
synced before the cut. A file ending in .tmp is a copy a crash interrupted (partial); no cut
was made after it. The database never deletes a sidecar; repeated crashes at one offset
that cut the same bytes share one.

With --clear it deletes them (after listing them) and syncs the directory. It takes the
database's lock while it works, so it fails with LOCKED while a writer has FILE open. The
bytes in them are gone: copy what you need first.

Exit status:
  0  listed (or cleared)
  3  an I/O error, a usage error, or LOCKED
`

// cmdSidecars is "walrec sidecars": db.Sidecars, and db.RemoveSidecars with --clear.
func cmdSidecars(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sidecars")
	clear := fs.Bool("clear", false, "delete the sidecars (takes the database's lock)")
	asJSON := fs.Bool("json", false, "print a JSON array of {path, offset, size, partial}")
	var of outFlags // no bar is ever drawn here; --quiet prints nothing on success
	of.register(fs)
	pos, code, ok := parseFlags(fs, sidecarsUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if of.quiet {
		stdout = io.Discard
	}
	return listSidecars(fs, pos[0], *clear, *asJSON, stdout, stderr)
}

type sidecarJSON struct {
	Path    string `json:"path"`
	Offset  int64  `json:"offset"`
	Size    int64  `json:"size"`
	Partial bool   `json:"partial"`
}

func listSidecars(fs *flag.FlagSet, path string, clear, asJSON bool, stdout, stderr io.Writer) int {
	var list []db.Sidecar
	var err error
	if clear {
		list, err = db.RemoveSidecars(path)
	} else {
		list, err = db.Sidecars(path)
	}
	out := make([]sidecarJSON, len(list))
	var total int64
	for i, s := range list {
		out[i] = sidecarJSON{s.Path, s.Offset, s.Size, s.Partial}
		total += s.Size
	}
	if asJSON {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		verb := ""
		if clear {
			verb = "removed "
		}
		for _, s := range out {
			note := ""
			if s.Partial {
				note = "  (partial: a copy a crash interrupted)"
			}
			fmt.Fprintf(stdout, "%s%s  offset %d  %d bytes%s\n", verb, quoteName(s.Path), s.Offset, s.Size, note)
		}
		fmt.Fprintf(stdout, "%d sidecars, %d bytes\n", len(out), total)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitError
	}
	return exitOK
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["sidecars"] = command{cmdSidecars} }
