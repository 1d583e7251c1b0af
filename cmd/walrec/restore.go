package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/streamwal/recovery/db"
)

const restoreUsage = `Usage: walrec restore IN FILE [--expect INFO] [--prefix] [--json] [--quiet]

Writes the database FILE from the backup IN ("-": standard input; a full backup, or a full
backup followed by its increments, concatenated) through db.Restore: the stream is written
beside FILE under a temporary name, every record of it verified as an open would (the same
refusals, codes and offsets), synced, and renamed to FILE only then. A refused stream leaves
FILE as it was. An existing FILE is replaced only if no process has it open (LOCKED
otherwise), and keeps its mode, owner and group; through a symbolic link, the file the link
names is the one replaced.

A stream that ends inside a record is refused with TAIL_DAMAGE and the offset; --prefix keeps
the whole records before it instead, and says how much it left out. A stream cut exactly at a
record boundary is a shorter log that verifies: --expect INFO (the backup's info JSON, from
walrec backup --info; for a full backup and its increments, the last increment's) refuses
it, and a stream whose last record is not the backup's.

With --json, one "report" line: file, input, received_bytes, size, records, ops, tail_bytes.

Here: 0 restored; 2 refused: the stream is corrupt, or ends inside a record (without
--prefix), or is not a database; 3 an I/O error, a usage error, LOCKED (a process has FILE
open), or --expect not met. A signal replaces nothing and removes the temporary file.

` + exitCodesHelp

// restoreReport is restore's report.
type restoreReport struct {
	jsonHead
	File     string  `json:"file"`
	FileHex  *string `json:"file_hex"`
	Input    string  `json:"input"` // IN, "-" for stdin
	InputHex *string `json:"input_hex"`
	Received *int64  `json:"received_bytes"` // null unless restored
	Size     *int64  `json:"size"`
	Records  *int64  `json:"records"`
	Ops      *int64  `json:"ops"`
	Tail     *int64  `json:"tail_bytes"`
	outcome
}

func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restore")
	expect := fs.String("expect", "", "the backup's `INFO` JSON: refuse a stream that does not end where the backup did")
	prefix := fs.Bool("prefix", false, "keep the verified records before a stream's torn or damaged end instead of refusing it")
	asJSON := fs.Bool("json", false, "print the report as a JSON line")
	var of outFlags
	of.registerQuiet(fs)
	pos, code, ok := parseFlags(ctx, fs, restoreUsage, args, 2, stdout, stderr)
	if !ok {
		return code
	}
	in, path := pos[0], pos[1]
	r := restoreReport{jsonHead: head("restore", "report"), File: path, FileHex: nameHex(&path), Input: in, InputHex: nameHex(&in)}
	done := ""
	out := func() int {
		return reportOut(ctx, stdout, stderr, "restore", path, &r.outcome, *asJSON, of.quiet, &r, r.human, done)
	}
	fail := func(err error) int {
		r.fail(ctx, err, nil)
		return out()
	}
	opts := []db.RestoreOption{}
	if *prefix {
		opts = append(opts, db.RestorePrefix())
	}
	if *expect != "" {
		info, err := readInfo(*expect)
		if err != nil {
			return fail(err)
		}
		opts = append(opts, db.RestoreExpect(info))
	}
	var src io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return fail(fmt.Errorf("IN %s: %s", quoteName(in), pathCause(err)))
		}
		defer f.Close()
		src = f
	}
	info, err := db.Restore(ctx, src, path, opts...)
	if err != nil {
		return fail(err)
	}
	r.Received, r.Size, r.Records, r.Ops, r.Tail = ptr(info.Received), ptr(info.Size), ptr(info.Records), ptr(info.Ops), ptr(info.Tail)
	done = fmt.Sprintf("restored %s (%d bytes)", quoteName(path), info.Size)
	r.succeed("restored", exitOK)
	return out()
}

// human is the text report of a restore.
func (r *restoreReport) human(w io.Writer) {
	if r.Size == nil {
		return
	}
	fmt.Fprintf(w, "%s: restored %s, %d records, %d ops\n", quoteName(r.File), bytesHuman(*r.Size), *r.Records, *r.Ops)
	if *r.Tail > 0 {
		fmt.Fprintf(w, "left out: the stream's last %s, which is not a whole, verified record (--prefix)\n", bytesHuman(*r.Tail))
	}
	if r.Signal != nil && r.Outcome != outCanceled {
		fmt.Fprintf(w, "%s came once the database was restored: it stays (exit %d)\n", *r.Signal, r.Exit)
	}
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["restore"] = command{cmdRestore} }
