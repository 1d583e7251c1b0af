package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/classify"
)

const verifyUsage = `Usage: walrec verify FILE... [--json] [--mode tolerate|strict|point-in-time]
                     [--max-record-size N] [--parallelism N] [--quiet] [--progress MODE]

Reports what recovery would do with FILE without doing it: the file is opened read-only
(O_RDONLY), no lock is taken and nothing is ever written, so it is safe on a database that
another process has open. It replays every record (verifying checksums and ops, discarding
them) and prints the outcome: clean, empty, a torn or damaged tail recovery would cut (and
where, and why), or why recovery refuses the file. With several FILEs, one report each, in
order; the exit status is the worst of theirs.

FILE "-" is standard input (a pipe, "walrec backup DB - | walrec verify -"): recovered as a
stream (recovery.RecoverStream), with the same decisions as for a file of the same bytes, the
checksums verified in parallel, in bounded memory; its size is what was read.

With --json it prints one "report" line per FILE: file, size, layout ("v1", "legacy" or null), mode,
outcome ("clean", "empty", "torn_header", "torn_tail", "damaged_tail", "corrupt",
"not_a_database", "unsupported_version", "record_too_large", "incomplete_read", "io_error",
...), code (the error code, or null), offset (where the damage, cut or error is, or null),
truncate_bytes (what recovery would cut, 0 if none), records, ops, bytes, end,
largest_record, parallelism, peak_buffered, detail, hint, error, signal and exit. Every field
is always present, null when it does not apply (a file that cannot be opened has null
measures). A file name that is not UTF-8 cannot be carried exactly in a JSON string: file_hex
then holds its bytes in hex (else it is null).

A failure is said once: the report on stdout says it, and one line goes to stderr as well
only when stdout is not a terminal (so a person still sees it when the report is redirected).
With --json nothing goes to stderr; with --quiet there is no report, only that line.

In strict mode a tail is a refusal: code TAIL_DAMAGE, exit 2 (outcome still names the tail).
In point-in-time mode mid-log corruption is a cut too: outcome "corrupt", code null, exit 1.

` + exitCodesHelp

// recoveryFlags are the flags verify, recover, dump and bench share.
type recoveryFlags struct {
	outFlags
	json        bool
	mode        modeFlag
	maxRecord   sizeFlag
	parallelism int
}

func (rf *recoveryFlags) register(fs *flag.FlagSet, withMode bool, defaultPar int) {
	fs.BoolVar(&rf.json, "json", false, "print JSON instead of text")
	if withMode {
		fs.Var(&rf.mode, "mode", "recovery `mode`: tolerate (default), strict or point-in-time")
	}
	rf.maxRecord = recovery.DefaultMaxRecord
	fs.Var(&rf.maxRecord, "max-record-size", "largest record payload recovery accepts, a `size` like 4096, 64KiB, 1GiB")
	if defaultPar >= 0 {
		fs.IntVar(&rf.parallelism, "parallelism", defaultPar, fmt.Sprintf("worker goroutines (each reads, verifies and in turn applies chunks): 0 one per CPU, 1 the sequential loop, at most %d", maxParallelism))
	}
	rf.outFlags.register(fs)
}

// maxParallelism is recovery's own limit on WithParallelism (TestParallelismLimit holds the
// two together): a larger value is a usage error here, not a failed recovery.
const maxParallelism = 1024

// check rejects flag values recovery would refuse, as a usage error (one line, exit 3).
func (rf *recoveryFlags) check(fs *flag.FlagSet, stderr io.Writer) bool {
	var msg string
	switch {
	case rf.parallelism < 0 || rf.parallelism > maxParallelism:
		msg = fmt.Sprintf("--parallelism %d outside [0, %d]", rf.parallelism, maxParallelism)
	case rf.maxRecord < 1 || rf.maxRecord > classify.MaxRecordLimit:
		msg = fmt.Sprintf("--max-record-size %d outside [1, %d]", int64(rf.maxRecord), int64(classify.MaxRecordLimit))
	default:
		return true
	}
	fmt.Fprintf(stderr, "%s: %s\nrun \"%s --help\" for usage\n", fs.Name(), msg, fs.Name())
	return false
}

// options are the recovery options the flags ask for (not ReadOnly, not progress).
func (rf *recoveryFlags) options() []recovery.Option {
	return []recovery.Option{
		recovery.WithMode(recovery.Mode(rf.mode)),
		recovery.WithMaxRecordSize(int64(rf.maxRecord)),
		recovery.WithParallelism(rf.parallelism),
	}
}

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify")
	var rf recoveryFlags
	rf.register(fs, true, 0)
	pos, code, ok := parseFlags(ctx, fs, verifyUsage, args, oneOrMore, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	worst := exitOK
	for i, path := range pos {
		r := verifyFile(ctx, "verify", path, &rf, nil, rf.progress(stderr, "verify", path))
		code := emit(ctx, stdout, stderr, "verify", &r, nil, &rf, i > 0)
		worst = max(worst, code) // the worst: 0 < 1 < 2 < 3 < 128+N
		if code > exitError || ctx.Err() != nil {
			break // a signal (or a reader gone) ends the run
		}
	}
	return worst
}

// verifyFile recovers path read-only into app (nil: discard) and reports; the signal tests
// stop it at the pause point point, after its first chunk.
func verifyFile(ctx context.Context, point, path string, rf *recoveryFlags, app recovery.Applier, p *progress) report {
	defer p.done()
	mode := recovery.Mode(rf.mode)
	if path == "-" {
		return verifyStream(ctx, point, rf, app, p)
	}
	f, err := openInput(path)
	if err != nil {
		return openErrorReport(path, mode, err)
	}
	defer f.Close()
	opts := append(rf.options(), recovery.ReadOnly(), recovery.WithProgress(both(p.callback(), pauseOnce(ctx, point))))
	res, err := recovery.Recover(ctx, f, app, opts...)
	p.done()
	r := newReport(path, mode, res, err)
	r.readOnly = true
	return r
}

// verifyStream is verify of standard input ("-"): recovery.RecoverStream, the same decisions
// as for a file of the same bytes, in bounded memory, the CRCs checked in parallel. A stream
// has no size to show progress against, and a tail is only reported: nothing can be cut.
func verifyStream(ctx context.Context, point string, rf *recoveryFlags, app recovery.Applier, p *progress) report {
	mode := recovery.Mode(rf.mode)
	opts := append(rf.options(), recovery.WithProgress(both(p.callback(), pauseOnce(ctx, point))))
	res, err := recovery.RecoverStream(ctx, stdin, app, opts...)
	p.done()
	r := newReport("-", mode, res, err)
	r.readOnly = true
	return r
}

// stdin is standard input, for "-" (tests replace it).
var stdin io.Reader = os.Stdin

// emit prints a report (text, or a JSON line) and the one-line error, and returns its exit
// status; sep puts a blank line before a text report (the second FILE's and later).
//
// A failure is said once to whoever is looking: the report on stdout says it; the one line on
// stderr is added only when stdout is not a terminal and the report is not JSON (a person at
// the terminal then still sees why), or with --quiet, which prints no report. A report that
// cannot be written is an error; one whose reader went away is SIGPIPE's 141, and recover
// then says on stderr what it did.
func emit(ctx context.Context, stdout, stderr io.Writer, cmd string, r *report, rec *recoverReport, rf *recoveryFlags, sep bool) int {
	r.stop(ctx)
	out := &errWriter{w: stdout}
	switch {
	case rf.quiet:
	case rf.json && rec != nil:
		rec.prepareJSON(cmd)
		writeJSON(out, rec)
	case rf.json:
		r.prepareJSON(cmd)
		writeJSON(out, r)
	default:
		if sep {
			fmt.Fprintln(out)
		}
		writeHuman(out, r, rec)
	}
	if rf.quiet || !rf.json && !isTerminal(stdout) {
		errorLine(stderr, cmd, r, rec)
	}
	if out.err != nil {
		done := ""
		if rec != nil {
			done = rec.doneText()
		}
		return writeFailed(ctx, stderr, cmd, r.File, r.Exit, out.err, done)
	}
	return r.Exit
}

// errWriter remembers the first write error, so a report written with many Fprintf calls is
// checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
