package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

const recoverUsage = `Usage: walrec recover FILE [--mode tolerate|strict|point-in-time] [--json]
                      [--max-record-size N] [--parallelism N]
                      [--sidecar-dir DIR | --output COPY] [--quiet] [--progress MODE]

Does the repair a database open does, and nothing else: it takes the database's writer lock
on FILE (the lock db.Open takes), lets recovery cut a torn or damaged tail (in point-in-time
mode: everything from the first bad record on), syncs the file and releases the lock. The
store is not rebuilt: records are verified and discarded, so memory stays bounded whatever
the size of FILE. A file recovery refuses is left untouched. FILE must exist: recover never
creates a database. A symbolic link is followed to the database it names.

The cut bytes are first copied to a sidecar file, FILE.cut-OFFSET (FILE.cut-OFFSET.N if that
name is taken: a sidecar is never replaced) beside the database, or in --sidecar-dir DIR,
and synced: no byte is destroyed. Runs of zeros in them (a preallocated or sparse tail) are
kept as holes: the sidecar reads back byte for byte, but they take no disk space. If the
other bytes would not fit in the free space, recover refuses and cuts nothing.

--output COPY leaves FILE untouched (it takes the lock, reads, writes nothing) and writes the
repaired log to COPY, a new file: what FILE would hold after the repair. The cut bytes stay
in FILE, so there is no sidecar. For a directory you cannot write to, or to look first.

It prints the same report as "walrec verify", plus, with --json (one "report" line),
truncated (whether a cut was made, in FILE or in COPY), sidecar (the file holding the cut
bytes, or null), sidecar_hole_bytes (zero bytes kept as holes), output (COPY, or null) and
output_bytes.

Here: 0 the file (or COPY) now opens cleanly, after a reported cut or not; 2 refused, the
file untouched; 3 an I/O error (a short read included; a sidecar that cannot be written or
would not fit: nothing was cut), a usage error, or LOCKED (close the other process first;
"walrec verify" reads the file without the lock). A signal while it reads, or while it
writes the sidecar or COPY, cuts nothing and removes the partial sidecar or COPY; one that
comes once the cut is made (it is made and synced at once) leaves the cut and its sidecar,
and the report, with exit 128+N, says so. "walrec recover FILE | true" (141) says on stderr
what was done.

` + exitCodesHelp

// recoverOpts are recover's own flags.
type recoverOpts struct {
	sidecarDir string
	output     string
}

func cmdRecover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("recover")
	var rf recoveryFlags
	rf.register(fs, true, 0)
	var ro recoverOpts
	fs.StringVar(&ro.sidecarDir, "sidecar-dir", "", "write the sidecar into `DIR` instead of beside the database")
	fs.StringVar(&ro.output, "output", "", "leave FILE untouched and write the repaired log to `COPY`, a new file")
	pos, code, ok := parseFlags(ctx, fs, recoverUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "walrec recover: %s\nrun \"walrec recover --help\" for usage\n", fmt.Sprintf(format, a...))
		return exitError
	}
	switch {
	case ro.sidecarDir != "" && ro.output != "":
		return usage("--sidecar-dir and --output do not go together (--output cuts nothing in FILE, so it writes no sidecar)")
	case ro.sidecarDir != "":
		if fi, err := os.Stat(ro.sidecarDir); err != nil || !fi.IsDir() {
			return usage("--sidecar-dir %s is not a directory", quoteName(ro.sidecarDir))
		}
	case ro.output != "":
		if _, err := os.Lstat(ro.output); err == nil {
			return usage("--output %s already exists; recover never replaces a file", quoteName(ro.output))
		}
	}
	rr := recoverFile(ctx, pos[0], &rf, &ro, rf.progress(stderr, "recover", pos[0]))
	return emit(ctx, stdout, stderr, "recover", &rr.report, &rr, &rf, false)
}

// recoverFile repairs path (or, with --output, writes its repaired copy) and reports.
func recoverFile(ctx context.Context, path string, rf *recoveryFlags, ro *recoverOpts, p *progress) recoverReport {
	defer p.done()
	mode := recovery.Mode(rf.mode)
	// Never create a database, never open what is not a regular file (a FIFO would block).
	if err := regularFile(path); err != nil {
		return recoverReport{report: openErrorReport(path, mode, err)}
	}
	openMode := db.OpenReadWrite
	if ro.output != "" {
		openMode = db.OpenReadOnly
	}
	// Locked, and checked to be the file the path names once locked (a compaction may have
	// renamed another over it meanwhile).
	f, real, err := db.OpenLocked(path, openMode)
	if errors.Is(err, db.ErrLocked) {
		r := newReport(path, mode, recovery.Result{}, err)
		if fi, serr := os.Stat(path); serr == nil { // the report says how large the file it could not take is
			r.Size = fi.Size()
		} else {
			r.sized = false
		}
		return recoverReport{report: r}
	}
	if err != nil {
		r := openErrorReport(path, mode, err)
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, errROFS) {
			r.Hint = "recover needs to write FILE; use --output COPY to write the repaired log elsewhere, or walrec verify to only look"
		}
		return recoverReport{report: r}
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		r := newReport(path, mode, recovery.Result{}, err)
		r.notOpened, r.sized, r.measured = true, false, false
		return recoverReport{report: r}
	}
	rfile := db.RecoveryFile(f, size)
	opts := append(rf.options(), recovery.WithProgress(both(p.callback(), pauseOnce(ctx, "recover"))))
	if ro.output != "" {
		return recoverToCopy(ctx, path, rfile, ro.output, mode, opts, p)
	}

	// The sidecar goes beside the database itself, not beside a link to it.
	dir := filepath.Dir(real)
	if ro.sidecarDir != "" {
		dir = ro.sidecarDir
	}
	var sc sidecar
	var hookErr error
	opts = append(opts, recovery.WithBeforeTruncate(func(t recovery.Truncation) error {
		// The database's own sidecar writer, the one db.Open uses: same names, same reuse of
		// identical bytes, same temporary-then-rename, zeros kept as holes, free space checked.
		sc.name, sc.holes, hookErr = db.WriteSidecar(ctx, freeSpaceFS{db.OS}, real, rfile, t, dir)
		if hookErr != nil {
			hookErr = sidecarError(ctx, t, dir, hookErr)
			return hookErr
		}
		// The sidecar is complete: the cut follows at once, signal or not (a test stops here).
		pauseHere(ctx, "recover-sidecar")
		return nil
	}))
	res, err := recovery.Recover(ctx, rfile, nil, opts...)
	p.done()
	if err == nil && !res.Truncated && res.End > 0 {
		// As db.Open does: what was replayed is now the database, so it must be durable.
		if serr := f.Sync(); serr != nil {
			err = walerr.Wrap(walerr.IO, -1, serr, "sync of the replayed log failed")
		}
	}
	if err != nil && hookErr != nil {
		err = hookErr // the sidecar's own error: what failed, and walrec's hint about it
	}
	rr := recoverReport{report: newReport(path, mode, res, err)}
	rr.Truncated, rr.cutMade = res.Truncated, res.Truncated
	if sc.name != "" { // written and kept, even if the cut itself then failed
		rr.Sidecar, rr.holes = ptr(sc.name), sc.holes
	}
	if err == nil && res.Truncation != nil {
		rr.Exit = exitOK
	}
	if cerr := f.Close(); cerr != nil && rr.Exit < exitError {
		rr.Outcome, rr.Exit, rr.Error, rr.Detail = outIO, exitError, ptr(cerr.Error()), cerr.Error()
	}
	return rr
}

// recoverToCopy recovers path read-only and writes what it would keep to out.
func recoverToCopy(ctx context.Context, path string, f recovery.WritableFile, out string, mode recovery.Mode, opts []recovery.Option, p *progress) recoverReport {
	res, err := recovery.Recover(ctx, f, nil, append(opts, recovery.ReadOnly())...)
	p.done()
	rr := recoverReport{report: newReport(path, mode, res, err)}
	if err != nil {
		return rr
	}
	keep := res.Size
	if t := res.Truncation; t != nil {
		keep = t.Offset
	}
	made := false // whether the copy was created (and so, on a failure, removed)
	fail := func(err error) recoverReport {
		e := walerr.Wrap(walerr.IO, -1, err, "writing the copy "+quoteName(out))
		if ctx.Err() != nil {
			e = walerr.Wrap(walerr.Canceled, -1, ctx.Err(), "stopped while writing the copy "+quoteName(out))
		}
		r := recoverReport{report: newReport(path, mode, res, e)}
		if made {
			r.Detail += "; the partial copy was removed and " + quoteName(path) + " is untouched"
		} else {
			r.Detail += "; no copy was made and " + quoteName(path) + " is untouched"
		}
		return r
	}
	if err := needSpace(filepath.Dir(out), keep, "the copy"); err != nil {
		return fail(err)
	}
	cf, own, err := createOwn(out, 0o644)
	if err != nil {
		return fail(err)
	}
	made = true
	pauseHere(ctx, "recover-copy")
	err = copyPrefix(ctx, cf, f, keep)
	if err == nil {
		err = cf.Sync()
	}
	if cerr := cf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(out))
	}
	if err == nil {
		// The copy must open cleanly: recover it, read-only, as the database would.
		err = checkCopy(ctx, out, opts)
	}
	if err != nil {
		own.remove()
		return fail(err)
	}
	rr.Truncated = res.Truncation != nil
	rr.Output = ptr(out)
	rr.OutputBytes = ptr(keep)
	rr.Exit = exitOK
	return rr
}

// checkCopy recovers the copy at path read-only and fails unless it is clean.
func checkCopy(ctx context.Context, path string, opts []recovery.Option) error {
	f, err := openInput(path)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := recovery.Recover(ctx, f, nil, append(opts[:len(opts):len(opts)], recovery.ReadOnly())...)
	if err == nil && res.Truncation != nil {
		err = fmt.Errorf("the copy does not open cleanly: %s", res)
	}
	return err
}

// sidecar is the file writeSidecar made.
type sidecar struct {
	name  string
	holes int64 // zero bytes kept as holes
}

// copyPrefix writes src's first n bytes to dst, stopping when ctx is done.
func copyPrefix(ctx context.Context, dst io.Writer, src io.ReaderAt, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(int64(len(buf)), n-off)
		if err := walerr.ReadFull(src, buf[:k], off); err != nil {
			return err
		}
		if _, err := dst.Write(buf[:k]); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// freeSpaceFS is the OS filesystem with walrec's own measure of free space (tests set it).
type freeSpaceFS struct{ db.FS }

func (freeSpaceFS) FreeSpace(dir string) (int64, error) {
	if free, ok := freeSpace(dir); ok {
		return free, nil
	}
	return 0, errors.ErrUnsupported
}

// sidecarError adds walrec's words and hint to a sidecar that could not be written.
func sidecarError(ctx context.Context, t recovery.Truncation, dir string, err error) error {
	if ctx.Err() != nil {
		return walerr.Wrap(walerr.Canceled, t.Offset, ctx.Err(), "stopped while keeping the cut bytes in a sidecar; nothing was cut")
	}
	hint := "free some space, or pass --sidecar-dir DIR (on another filesystem), or --output COPY to write a repaired copy and leave the file as it is"
	if free, ok := freeSpace(dir); ok && errors.Is(err, db.ErrNoSpace) {
		// Said once, in walrec's words: the database's own message says the same again.
		return walerr.New(walerr.IO, t.Offset, fmt.Sprintf("the %s cut bytes do not fit in the %s free in %s (zeros among them would take no space)",
			group(t.Bytes), bytesHuman(free), dirName(dir))).WithHint(hint)
	}
	return walerr.Wrap(walerr.IO, t.Offset, err, "cannot keep the cut bytes in a sidecar").WithHint(hint)
}
