package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

Exit status:
  0  written
  2  refused: FILE is corrupt (recovery would refuse it), or REWRITTEN (--since)
  3  an I/O error, a usage error, OUT exists
  130 stopped by Ctrl-C (SIGINT); 143 by SIGTERM, 129 by SIGHUP, 141 by SIGPIPE: the partial
     backup is removed, FILE is untouched
`

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("backup")
	since := fs.String("since", "", "an earlier backup's `INFO` JSON: write only what was appended after it")
	infoOut := fs.String("info", "", "also write the backup's info JSON to `INFO_OUT` (for a later --since or restore --expect)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(fs, backupUsage, args, 2, stdout, stderr)
	if !ok {
		return code
	}
	path, out := pos[0], pos[1]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "walrec backup: %v\n", err)
		switch db.CodeOf(err) {
		case walerr.CorruptWAL, walerr.NotADatabase, walerr.UnsupportedVersion, walerr.RecordTooLarge, db.CodeRewritten:
			return exitRefused
		}
		return exitError
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
	report := stdout
	var info db.BackupInfo
	var err error
	if out == "-" {
		report = stderr
		info, err = db.BackupFile(ctx, nil, path, stdout, opts...)
	} else {
		info, err = backupTo(ctx, path, out, opts)
	}
	if err != nil {
		return fail(err)
	}
	if *infoOut != "" {
		if err := writeInfo(*infoOut, info); err != nil {
			return fail(fmt.Errorf("the backup is complete, but its info could not be written: %w", err))
		}
	}
	if of.quiet {
		return exitOK
	}
	w := &errWriter{w: report}
	if *asJSON {
		writeJSON(w, info)
	} else {
		fmt.Fprintf(w, "%s: %s of the log [%d, %d): %d records, %d ops\n", quoteName(out), bytesHuman(info.Bytes()), info.Start, info.End, info.Records, info.Ops)
		if info.Tail > 0 {
			fmt.Fprintf(w, "left out: the last %s of FILE (a commit still being written, or damage: walrec verify says which)\n", bytesHuman(info.Tail))
		}
	}
	if w.err != nil {
		fmt.Fprintf(stderr, "walrec backup: the backup is complete, but the report could not be written: %v\n", w.err)
		return exitError
	}
	return exitOK
}

// backupTo writes the backup to out through a temporary file beside it, renamed into place
// once complete and synced.
func backupTo(ctx context.Context, path, out string, opts []db.BackupOption) (db.BackupInfo, error) {
	if _, err := os.Lstat(out); err == nil {
		return db.BackupInfo{}, fmt.Errorf("%s exists; backup never replaces a file", quoteName(out))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return db.BackupInfo{}, err
	}
	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".walrec-backup-*")
	if err != nil {
		return db.BackupInfo{}, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return db.BackupInfo{}, err
	}
	own := &ownFile{path: tmp.Name(), fi: fi}
	info, err := db.BackupFile(ctx, nil, path, &pausingWriter{ctx: ctx, w: tmp}, opts...)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// link, not rename: an OUT created meanwhile is never replaced.
		if err = os.Link(own.path, out); err == nil {
			err = os.Remove(own.path)
			own = nil
		}
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		if own != nil {
			own.remove()
		}
		return info, err
	}
	return info, nil
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

// readInfo reads a backup's info JSON.
func readInfo(path string) (db.BackupInfo, error) {
	var info db.BackupInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s is not a backup's info JSON: %w", quoteName(path), err)
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
