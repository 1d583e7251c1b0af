package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

const backupUsage = `Usage: walrec backup FILE OUT [--since INFO] [--info INFO_OUT] [--json] [--quiet]

Writes a hot backup of the database FILE to OUT ("-": standard output) while its writer goes
on: FILE is opened read-only and no lock is taken (db.BackupFile). The backup is the log
itself, up to the last record that verifies (every record's checksum is checked on the way): a
database file of the same layout that walrec, the database and the TypeScript kernel open as
it is. A commit still being written when the backup began is left out, and said so.

OUT is written beside itself under a temporary name, synced, and renamed to OUT only once
complete, so a kill at any instant leaves a complete backup or none under its name; OUT must
not exist. With --since INFO (the JSON an earlier backup wrote with --info or printed with
--json), only the bytes appended since that backup are written: the full backup and its
increments, concatenated in order, are the database (walrec restore reads them so). When the
log was rewritten since (a compaction), --since refuses with REWRITTEN: take a full backup.

The report says what the backup holds: the log's bytes [start, end), the records and ops in
them, the last record's checksum, and the tail left out. With OUT "-" it goes to stderr.
With --json it is one "report" line whose start, end, records, ops, last_crc and tail_bytes
are the backup's info: the line itself can be given to a later --since.

Here: 0 written; 2 refused: FILE is corrupt (recovery would refuse it), or REWRITTEN
(--since); 3 an I/O error, a usage error, OUT exists. A signal removes the partial backup
(with OUT "-", what went to stdout is not a complete backup, and the report says so); FILE is
never touched.

` + exitCodesHelp

// backupReport is backup's report; its info fields are db.BackupInfo's, by name.
type backupReport struct {
	jsonHead
	File      string  `json:"file"`
	FileHex   *string `json:"file_hex"`
	Output    string  `json:"output"` // OUT, "-" for stdout
	OutputHex *string `json:"output_hex"`
	Start     *int64  `json:"start"` // null unless written
	End       *int64  `json:"end"`
	Records   *int64  `json:"records"`
	Ops       *int64  `json:"ops"`
	LastCRC   *uint32 `json:"last_crc"`
	Tail      *int64  `json:"tail_bytes"`
	outcome
}

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("backup")
	since := fs.String("since", "", "an earlier backup's `INFO` JSON: write only what was appended after it")
	infoOut := fs.String("info", "", "also write the backup's info JSON to `INFO_OUT` (for a later --since or restore --expect)")
	asJSON := fs.Bool("json", false, "print the report as a JSON line")
	var of outFlags
	of.registerQuiet(fs)
	pos, code, ok := parseFlags(ctx, fs, backupUsage, args, 2, stdout, stderr)
	if !ok {
		return code
	}
	path, out := pos[0], pos[1]
	r := backupReport{jsonHead: head("backup", "report"), File: path, FileHex: nameHex(&path), Output: out, OutputHex: nameHex(&out)}
	report := stdout
	if out == "-" {
		report = stderr
	}
	done := ""
	emit := func() int {
		return reportOut(ctx, report, stderr, "backup", path, &r.outcome, *asJSON, of.quiet, &r, r.human, done)
	}
	fail := func(err error) int {
		r.fail(ctx, err, backupHints)
		if out == "-" {
			r.Detail += "; what went to stdout is not a complete backup"
		}
		return emit()
	}
	var opts []db.BackupOption
	if *since != "" {
		prev, err := readInfo(*since)
		if err != nil {
			return fail(err)
		}
		opts = append(opts, db.Since(prev))
	}
	if err := regularFile(path); err != nil {
		return fail(err)
	}
	var info db.BackupInfo
	var err error
	if out == "-" {
		info, err = db.BackupFile(ctx, nil, path, stdout, opts...)
	} else {
		info, err = backupTo(ctx, path, out, opts)
	}
	if err != nil {
		return fail(err)
	}
	r.Start, r.End, r.Records, r.Ops, r.LastCRC, r.Tail = ptr(info.Start), ptr(info.End), ptr(info.Records), ptr(info.Ops), ptr(info.Last), ptr(info.Tail)
	done = fmt.Sprintf("wrote the backup %s (the log's bytes [%d, %d))", quoteName(out), info.Start, info.End)
	if *infoOut != "" {
		if err := writeInfo(*infoOut, info); err != nil {
			return fail(fmt.Errorf("the backup is complete, but its info could not be written: %w", err))
		}
	}
	r.succeed("written", exitOK)
	return emit()
}

// backupHints are backup's words for what to do, by code.
var backupHints = map[walerr.Code]string{
	walerr.CorruptWAL: "nothing was written; acknowledged records may follow the damage: walrec salvage FILE --output COPY copies every record that verifies",
	walerr.Rewritten:  "the log was rewritten (compacted) since that backup: take a full backup, without --since",
}

// human is the text report of a backup.
func (r *backupReport) human(w io.Writer) {
	if r.Start == nil {
		return
	}
	fmt.Fprintf(w, "%s: %s of the log [%d, %d): %d records, %d ops\n", quoteName(r.Output), bytesHuman(*r.End-*r.Start), *r.Start, *r.End, *r.Records, *r.Ops)
	if *r.Tail > 0 {
		fmt.Fprintf(w, "left out: the last %s of FILE (a commit still being written, or damage: walrec verify says which)\n", bytesHuman(*r.Tail))
	}
	if r.Signal != nil && r.Outcome != outCanceled {
		fmt.Fprintf(w, "%s came once the backup was complete: it is kept (exit %d)\n", *r.Signal, r.Exit)
	}
}

// backupTo writes the backup to out through a temporary file beside it, linked into place
// once complete and synced (createNew).
func backupTo(ctx context.Context, path, out string, opts []db.BackupOption) (db.BackupInfo, error) {
	var info db.BackupInfo
	err := createNew(out, "backup", func(w io.Writer) error {
		var err error
		info, err = db.BackupFile(ctx, nil, path, &pausingWriter{ctx: ctx, w: w}, opts...)
		return err
	})
	return info, err
}

// pausingWriter is the backup's file, with the test pause point "backup" after its first
// write (the signal and kill tests stop a backup there, half written).
type pausingWriter struct {
	ctx    context.Context
	w      io.Writer
	paused bool
}

func (p *pausingWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if !p.paused && err == nil {
		p.paused = true
		pauseHere(p.ctx, "backup")
	}
	return n, err
}

// readInfo reads a backup's info JSON: the file --info wrote, or the "report" line
// backup --json printed (which must be a backup's that was written).
func readInfo(path string) (db.BackupInfo, error) {
	var info db.BackupInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	var rep struct {
		Command *string `json:"command"`
		Exit    *int    `json:"exit"`
		End     *int64  `json:"end"`
	}
	if err := json.Unmarshal(b, &info); err != nil || json.Unmarshal(b, &rep) != nil {
		return info, fmt.Errorf("%s is not a backup's info JSON: %v", quoteName(path), err)
	}
	if rep.End == nil || rep.Command != nil && (*rep.Command != "backup" || rep.Exit == nil || *rep.Exit != exitOK) {
		return info, fmt.Errorf("%s is not the info of a backup that was written", quoteName(path))
	}
	return info, nil
}

// writeInfo writes a backup's info JSON, synced, through a temporary name.
func writeInfo(path string, info db.BackupInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, own, err := createOwn(tmp, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		own.remove()
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["backup"] = command{cmdBackup} }
