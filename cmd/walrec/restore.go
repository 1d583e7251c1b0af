package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
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

Exit status:
  0  restored
  2  refused: the stream is corrupt, or ends inside a record (without --prefix), or is not a
     database
  3  an I/O error, a usage error, LOCKED (a process has FILE open), or --expect not met
  130 stopped by Ctrl-C (SIGINT); 143 by SIGTERM, 129 by SIGHUP, 141 by SIGPIPE: nothing is
     replaced, the temporary file is removed
`

func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restore")
	expect := fs.String("expect", "", "the backup's `INFO` JSON: refuse a stream that does not end where the backup did")
	prefix := fs.Bool("prefix", false, "keep the verified records before a stream's torn or damaged end instead of refusing it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(fs, restoreUsage, args, 2, stdout, stderr)
	if !ok {
		return code
	}
	in, path := pos[0], pos[1]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "walrec restore: %v\n", err)
		switch db.CodeOf(err) {
		case walerr.CorruptWAL, walerr.NotADatabase, walerr.UnsupportedVersion, walerr.RecordTooLarge, walerr.TailDamage:
			return exitRefused
		}
		return exitError
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
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		r = f
	}
	info, err := db.Restore(ctx, r, path, opts...)
	if err != nil {
		return fail(err)
	}
	if of.quiet {
		return exitOK
	}
	w := &errWriter{w: stdout}
	if *asJSON {
		writeJSON(w, info)
	} else {
		fmt.Fprintf(w, "%s: restored %s, %d records, %d ops\n", quoteName(path), bytesHuman(info.Size), info.Records, info.Ops)
		if info.Tail > 0 {
			fmt.Fprintf(w, "left out: the stream's last %s, which is not a whole, verified record (--prefix)\n", bytesHuman(info.Tail))
		}
	}
	if w.err != nil {
		fmt.Fprintf(stderr, "walrec restore: restored, but the report could not be written: %v\n", w.err)
		return exitError
	}
	return exitOK
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["restore"] = command{cmdRestore} }
