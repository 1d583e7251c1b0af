package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

// inputFile is a log opened for reading only: positional reads, a size, nothing that writes.
type inputFile interface {
	recovery.File
	Close() error
}

// openInput opens path O_RDONLY, takes no lock, and measures its size. Tests replace it to
// inject read faults.
var openInput = func(path string) (inputFile, error) {
	if err := regularFile(path); err != nil { // before open: opening a FIFO blocks
		return nil, err
	}
	// O_NONBLOCK: should the name turn into a FIFO between the check and the open, the open
	// still returns at once (and the check below refuses it).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &roFile{f: f, size: fi.Size()}, nil
}

// regularFile refuses what is not a regular file (a directory, a FIFO, a device): a log is a
// file, and opening a FIFO would block with no way to cancel it. A symbolic link is followed.
func regularFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return notRegular(path, fi)
	}
	return nil
}

// roFile is an *os.File as a recovery.File and nothing more: recovery cannot cut it even if
// asked to.
type roFile struct {
	f    *os.File
	size int64
}

func (r *roFile) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *roFile) Size() int64                             { return r.size }
func (r *roFile) Close() error                            { return r.f.Close() }

// Outcomes, as --json reports them.
const (
	outClean       = "clean"
	outEmpty       = "empty"
	outCorrupt     = "corrupt"
	outNotDB       = "not_a_database"
	outUnsupported = "unsupported_version"
	outIncomplete  = "incomplete_read"
	outTooLarge    = "record_too_large"
	outTailDamage  = "tail_damage" // strict refusal whose kind of tail could not be told
	outIO          = "io_error"
	outLocked      = "locked"
	outCanceled    = "canceled"
	outInvalid     = "invalid_argument"
)

// report is what verify, recover, dump and bench say about a file; its JSON form is their
// "report" line. Every field is always present; one that does not apply is null: the
// measures (size, records, ...) of a file that could not be opened or read, the code of a
// success, the offset where there is none.
type report struct {
	jsonHead
	File         string  `json:"file"`
	FileHex      *string `json:"file_hex"` // the name's bytes in hex when it is not UTF-8 (file then shows U+FFFD), else null
	SizeJSON     *int64  `json:"size"`     // null when the file could not be opened
	Layout       *string `json:"layout"`   // "v1", "legacy", or null (empty, or refused before it was known)
	Mode         string  `json:"mode"`
	Outcome      string  `json:"outcome"`
	Code         *string `json:"code"`           // the error code, null when recovery succeeded
	Offset       *int64  `json:"offset"`         // where the damage, truncation or error is; null when none
	TruncateJSON *int64  `json:"truncate_bytes"` // what recovery would cut (recover: did cut, or decided to cut before a failure); 0 if none
	DetailJSON   *string `json:"detail"`         // what was found, null when nothing to say
	HintJSON     *string `json:"hint"`           // what to do about it, null when nothing to say
	Error        *string `json:"error"`          // the full error message, null when none
	RecordsJSON  *int64  `json:"records"`
	OpsJSON      *int64  `json:"ops"`
	BytesJSON    *int64  `json:"bytes"`
	EndJSON      *int64  `json:"end"`
	LargestJSON  *int64  `json:"largest_record"`
	ParallelJSON *int    `json:"parallelism"`
	PeakJSON     *int64  `json:"peak_buffered"`
	Signal       *string `json:"signal"` // "SIGINT" when a signal stopped the command, else null
	Exit         int     `json:"exit"`

	Size          int64  `json:"-"`
	TruncateBytes int64  `json:"-"`
	Records       int64  `json:"-"`
	Ops           int64  `json:"-"`
	Bytes         int64  `json:"-"`
	End           int64  `json:"-"`
	LargestRecord int64  `json:"-"`
	Parallelism   int    `json:"-"`
	PeakBuffered  int64  `json:"-"`
	Detail        string `json:"-"`
	Hint          string `json:"-"`

	strictTail bool // a strict refusal of a tail: Outcome is the tail's reason
	readOnly   bool // verify and dump: nothing was or will be written
	notOpened  bool // the file could not be opened at all
	cutMade    bool // a failure after the cut was made (its sync failed)
	sized      bool // Size is known
	measured   bool // recovery ran: the measures are its
}

// recoverReport is recover's: the same, plus what was cut and where the bytes went.
type recoverReport struct {
	report
	Truncated        bool    `json:"truncated"`
	Sidecar          *string `json:"sidecar"`            // the file holding the cut bytes, null when none
	SidecarHex       *string `json:"sidecar_hex"`        // its name's bytes in hex when not UTF-8, else null
	SidecarHoleBytes *int64  `json:"sidecar_hole_bytes"` // zero bytes of the sidecar kept as holes (no disk space); null without a sidecar
	Output           *string `json:"output"`             // --output: the repaired copy, else null
	OutputHex        *string `json:"output_hex"`         // its name's bytes in hex when not UTF-8, else null
	OutputBytes      *int64  `json:"output_bytes"`       // --output: the copy's size, else null

	holes int64
}

// stop gives the report of a command that a signal reached (before its report was
// written) the signal's exit status, 128+N, and names the signal: the shell that ran it
// learns it was stopped (a loop over files ends), and the report still says what was done.
// A failure the signal caused is CANCELED.
func (r *report) stop(ctx context.Context) {
	n := stopSignal(ctx)
	if n == 0 {
		return
	}
	if r.Exit >= exitError && r.Outcome != outCanceled {
		r.Outcome, r.Code = outCanceled, ptr(string(recovery.CodeCanceled))
	}
	r.Exit, r.Signal = 128+n, ptr(signalName(n))
}

// nameHex is the hex of a name that JSON cannot carry exactly (not UTF-8), else nil.
func nameHex(s *string) *string {
	if s == nil || utf8.ValidString(*s) {
		return nil
	}
	return ptr(hex.EncodeToString([]byte(*s)))
}

// prepareJSON fills the fields that only the JSON form has.
func (r *report) prepareJSON(cmd string) {
	r.jsonHead = head(cmd, "report")
	r.FileHex = nameHex(&r.File)
	r.SizeJSON, r.TruncateJSON, r.RecordsJSON, r.OpsJSON, r.BytesJSON, r.EndJSON, r.LargestJSON, r.ParallelJSON, r.PeakJSON =
		nil, nil, nil, nil, nil, nil, nil, nil, nil
	if r.sized || r.measured {
		r.SizeJSON = ptr(r.Size)
	}
	if r.measured {
		r.TruncateJSON, r.RecordsJSON, r.OpsJSON, r.BytesJSON, r.EndJSON = ptr(r.TruncateBytes), ptr(r.Records), ptr(r.Ops), ptr(r.Bytes), ptr(r.End)
		r.LargestJSON, r.ParallelJSON, r.PeakJSON = ptr(r.LargestRecord), ptr(r.Parallelism), ptr(r.PeakBuffered)
	}
	r.DetailJSON, r.HintJSON = nil, nil
	if r.Detail != "" {
		r.DetailJSON = ptr(r.Detail)
	}
	if r.Hint != "" {
		r.HintJSON = ptr(r.Hint)
	}
}

func (r *recoverReport) prepareJSON(cmd string) {
	r.report.prepareJSON(cmd)
	r.SidecarHex, r.OutputHex = nameHex(r.Sidecar), nameHex(r.Output)
	r.SidecarHoleBytes = nil
	if r.Sidecar != nil {
		r.SidecarHoleBytes = ptr(r.holes)
	}
}

// cliHints replace the library's hints, which name library options, by what to do with walrec.
var cliHints = map[recovery.Code]string{
	recovery.CodeCorruptWAL: "acknowledged records may follow, so nothing was cut and the file is untouched; " +
		"walrec recover --mode point-in-time cuts from this offset on (keeping the bytes in a sidecar), and walrec salvage --output COPY copies every record that verifies, after the damage too",
	recovery.CodeRecordTooLarge: "if the record is real, raise --max-record-size (at most 4294967294); the file is untouched",
	recovery.CodeTailDamage:     "the file is untouched; without --mode strict, recovery cuts this tail, which walrec recover keeps in a sidecar",
}

func ptr[T any](v T) *T { return &v }

// lockedError is a LOCKED error's message in walrec's words: the library's names a Go option.
func lockedError(we *walerr.Error) string {
	return fmt.Sprintf("db: LOCKED %s: another process has the database open for writing", we.Path)
}

// newReport describes what recovery (res, err) said about file.
func newReport(file string, mode recovery.Mode, res recovery.Result, err error) report {
	r := report{
		File: file, Size: res.Size, Mode: mode.String(),
		Records: res.Records, Ops: res.Ops, Bytes: res.Bytes, End: res.End,
		LargestRecord: res.LargestRecord, Parallelism: res.Parallelism, PeakBuffered: res.PeakBuffered,
		sized: true, measured: true,
	}
	if res.Layout != recovery.LayoutUnknown {
		r.Layout = ptr(res.Layout.String())
	}
	if err == nil {
		switch t := res.Truncation; {
		case t != nil:
			r.Outcome, r.Offset, r.TruncateBytes, r.Detail, r.Exit = string(t.Reason), ptr(t.Offset), t.Bytes, t.Detail, exitTail
		case res.Size == 0:
			r.Outcome, r.Exit = outEmpty, exitOK
		default:
			r.Outcome, r.Exit = outClean, exitOK
		}
		return r
	}
	r.Error = ptr(err.Error())
	var we *recovery.Error
	if !errors.As(err, &we) {
		r.Detail = err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == file {
			r.Detail = pe.Err.Error() // "permission denied": the path is in the report already
			r.notOpened, r.measured = true, false
		}
		r.Outcome, r.Exit = outIO, exitError
		return r
	}
	r.Code = ptr(string(we.Code))
	if we.Code == db.CodeLocked {
		r.Outcome, r.Exit, r.measured = outLocked, exitError, false
		r.Error = ptr(lockedError(we))
		r.Detail = "another process has the database open for writing (it holds the writer's lock)"
		r.Hint = "close it first, or run walrec verify, which takes no lock and writes nothing"
		return r
	}
	if we.Offset >= 0 {
		r.Offset = ptr(we.Offset)
	}
	r.Detail, r.Hint = we.Detail, we.Hint
	if h, ok := cliHints[we.Code]; ok {
		r.Hint = h
	}
	if we.Err != nil {
		r.Detail = strings.TrimPrefix(r.Detail+": "+we.Err.Error(), ": ")
	}
	r.Outcome, r.Exit = outIO, exitError
	switch we.Code {
	case recovery.CodeCorruptWAL:
		r.Outcome, r.Exit = outCorrupt, exitRefused
	case recovery.CodeNotADatabase:
		r.Outcome, r.Exit = outNotDB, exitRefused
	case recovery.CodeUnsupportedVersion:
		r.Outcome, r.Exit = outUnsupported, exitRefused
	case recovery.CodeRecordTooLarge:
		r.Outcome, r.Exit = outTooLarge, exitRefused
	case recovery.CodeTailDamage:
		r.Outcome, r.Exit, r.strictTail = outTailDamage, exitRefused, true
		if t := res.Truncation; t != nil { // the cut strict mode refused: name its kind
			r.Outcome = string(t.Reason)
		}
		return r
	case recovery.CodeIncompleteRead:
		r.Outcome = outIncomplete
	case recovery.CodeCanceled:
		r.Outcome = outCanceled
	case recovery.CodeInvalidArgument:
		r.Outcome = outInvalid
	}
	// A failure after recovery had decided a cut (a sidecar that could not be written, a
	// file that changed size, a sync after the cut that failed): the report keeps what had
	// been measured, and whether the cut was made.
	if t := res.Truncation; t != nil {
		r.TruncateBytes, r.cutMade = t.Bytes, res.Truncated
		if r.Offset == nil {
			r.Offset = ptr(t.Offset)
		}
	}
	return r
}

// writeJSON writes v as one line.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeHuman writes the report for a person. It holds nothing that varies between runs.
func writeHuman(w io.Writer, r *report, rec *recoverReport) {
	switch {
	case r.notOpened:
		fmt.Fprintf(w, "%s: cannot be opened\n", quoteName(r.File))
	case r.Layout != nil:
		fmt.Fprintf(w, "%s: %s log, %d bytes, mode %s\n", quoteName(r.File), *r.Layout, r.Size, r.Mode)
	case r.Size == 0 && r.Outcome == outEmpty:
		fmt.Fprintf(w, "%s: empty file, mode %s\n", quoteName(r.File), r.Mode)
	default:
		fmt.Fprintf(w, "%s: %d bytes, mode %s\n", quoteName(r.File), r.Size, r.Mode)
	}
	line := func(k, v string) { fmt.Fprintf(w, "  %-9s %s\n", k, v) }
	if r.Layout != nil {
		line("replayed", fmt.Sprintf("%d records, %d ops, %d bytes (through offset %d; largest payload %d bytes)",
			r.Records, r.Ops, r.Bytes, r.End, r.LargestRecord))
	}
	at := ""
	if r.Offset != nil {
		at = fmt.Sprintf(" at offset %d", *r.Offset)
	}
	code := ""
	if r.Code != nil {
		code = *r.Code
	}
	cut := func(among string) string {
		switch {
		case rec != nil && rec.Output != nil:
			return fmt.Sprintf("the copy leaves out the last %d bytes%s (the file itself is untouched)", r.TruncateBytes, among)
		case rec != nil && rec.Truncated:
			return fmt.Sprintf("cut the last %d bytes%s", r.TruncateBytes, among)
		case r.readOnly:
			return fmt.Sprintf("recovery would cut the last %d bytes%s (nothing was written)", r.TruncateBytes, among)
		}
		return fmt.Sprintf("recovery decided to cut the last %d bytes%s", r.TruncateBytes, among)
	}
	var out string
	switch {
	case r.Signal != nil && r.Outcome == outCanceled:
		out = fmt.Sprintf("stopped by %s%s: %s", *r.Signal, at, r.stoppedWhat(rec))
	case r.notOpened:
		out = fmt.Sprintf("%s: %s", r.Outcome, r.Detail)
	case r.Outcome == outClean:
		out = "clean: every byte is a verified record; recovery changes nothing"
	case r.Outcome == outEmpty:
		out = "empty: a new database; nothing to replay"
	case r.Error == nil && r.Outcome == outCorrupt: // point-in-time salvage
		out = fmt.Sprintf("corrupt%s: point-in-time salvage: %s", at, cut(", acknowledged records among them"))
	case r.Error == nil:
		out = fmt.Sprintf("%s%s: %s", r.Outcome, at, cut(""))
	case r.strictTail:
		out = fmt.Sprintf("%s%s: refused in strict mode (%s); the file is untouched", r.Outcome, at, code)
	case r.Exit == exitRefused:
		out = fmt.Sprintf("%s%s: recovery refuses the file (%s); the file is untouched", r.Outcome, at, code)
	case r.Outcome == outLocked:
		out = fmt.Sprintf("locked: another process has the database open (%s); nothing was read or written", code)
	case r.cutMade:
		out = fmt.Sprintf("%s%s (%s): the last %d bytes were cut, but the cut may not be durable; run walrec recover again", r.Outcome, at, code, r.TruncateBytes)
	case r.TruncateBytes > 0:
		out = fmt.Sprintf("%s%s (%s): recovery had decided to cut the last %d bytes; nothing was cut, the file is untouched", r.Outcome, at, code, r.TruncateBytes)
	default:
		if code != "" {
			code = " (" + code + ")"
		}
		out = fmt.Sprintf("%s%s%s: nothing was cut; the file is untouched", r.Outcome, at, code)
	}
	line("outcome", out)
	if r.Detail != "" && !r.notOpened {
		line("found", r.Detail)
	}
	if r.Hint != "" {
		line("hint", r.Hint)
	}
	if rec != nil && rec.Sidecar != nil {
		held := quoteName(*rec.Sidecar) + " holds the cut bytes"
		if rec.holes > 0 {
			held += fmt.Sprintf(" (%d of them zeros, kept as a hole: no disk space)", rec.holes)
		}
		line("sidecar", held)
	}
	ok := r.Exit == exitOK || r.Signal != nil && r.Outcome != outCanceled
	switch {
	case rec != nil && rec.Output != nil && ok:
		line("copy", fmt.Sprintf("%s holds the repaired log and opens cleanly (%d bytes)", quoteName(*rec.Output), *rec.OutputBytes))
	case rec != nil && ok && r.Error == nil:
		line("now", fmt.Sprintf("the file opens cleanly (%d bytes)", r.Size-r.TruncateBytes))
	}
	if r.Signal != nil && r.Outcome != outCanceled {
		line("signal", *r.Signal+" came once the work above was done: it is whole")
	}
	line("exit", fmt.Sprint(r.Exit))
}

// stoppedWhat says what had been done when a signal stopped the command.
func (r *report) stoppedWhat(rec *recoverReport) string {
	switch {
	case r.readOnly:
		return "nothing was written"
	case rec != nil && rec.Output != nil:
		return "the copy was not made (what had been written of it was removed); the file is untouched"
	case r.cutMade && rec != nil && rec.Sidecar != nil:
		return fmt.Sprintf("the last %d bytes had been cut before it, and are kept in %s", r.TruncateBytes, quoteName(*rec.Sidecar))
	case r.cutMade:
		return fmt.Sprintf("the last %d bytes had been cut before it", r.TruncateBytes)
	case rec != nil && rec.Sidecar != nil:
		return fmt.Sprintf("nothing was cut (the bytes recovery would cut are kept in %s as well); the file is untouched", quoteName(*rec.Sidecar))
	}
	return "nothing was cut (a partial sidecar was removed); the file is untouched"
}

// doneText is what recover did, for the line on stderr when its report cannot be written.
func (rec *recoverReport) doneText() string {
	switch {
	case rec.Output != nil && rec.Exit == exitOK:
		return fmt.Sprintf("wrote the repaired log to %s (%d bytes); the file is untouched", quoteName(*rec.Output), *rec.OutputBytes)
	case rec.Truncated && rec.Sidecar != nil:
		return fmt.Sprintf("cut the last %d bytes at offset %d, kept in %s", rec.TruncateBytes, *rec.Offset, quoteName(*rec.Sidecar))
	case rec.Truncated:
		return fmt.Sprintf("cut the last %d bytes at offset %d", rec.TruncateBytes, *rec.Offset)
	}
	return "nothing was cut; the file is untouched"
}

// errorLine is the one line on stderr for a failure: "walrec verify FILE: ...".
func errorLine(stderr io.Writer, cmd string, r *report, rec *recoverReport) {
	if r.Exit < exitRefused || r.Error == nil && r.Signal == nil {
		return
	}
	if r.readOnly && r.Signal != nil && *r.Signal == "SIGPIPE" {
		return // the reader went away from a command that changed nothing: nothing to say
	}
	if r.Signal != nil && r.Outcome != outCanceled {
		return // the work was done: nothing failed
	}
	var msg string
	switch {
	case r.Signal != nil:
		msg = fmt.Sprintf("stopped by %s (exit %d)", *r.Signal, r.Exit)
		if r.Offset != nil {
			msg += fmt.Sprintf(" at offset %d", *r.Offset)
		}
		msg += ": " + r.stoppedWhat(rec)
	case r.Outcome == outLocked:
		msg = "the database is locked by another process (LOCKED): close it first, or run \"walrec verify\", which takes no lock"
	case r.Code == nil:
		msg = r.Detail
		if msg == "" && r.Error != nil {
			msg = *r.Error
		}
	default: // the code, where, what, and what to do, with walrec's hint rather than the library's
		msg = *r.Code
		if r.Offset != nil {
			msg += fmt.Sprintf(" at offset %d", *r.Offset)
		}
		if r.Detail != "" {
			msg += ": " + r.Detail
		}
		if r.Hint != "" {
			msg += "; " + r.Hint
		}
	}
	fmt.Fprintf(stderr, "walrec %s %s: %s\n", cmd, quoteName(r.File), msg)
}

// openErrorReport is the report for a file that could not be opened at all: missing, a
// directory, no permission.
func openErrorReport(file string, mode recovery.Mode, err error) report {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error() // the path is in the report already: "no such file or directory"
	}
	return report{File: file, Mode: mode.String(), Outcome: outIO, Exit: exitError, Error: ptr(msg), Detail: msg, notOpened: true}
}

// modeFlag is --mode.
type modeFlag recovery.Mode

func (m *modeFlag) String() string { return recovery.Mode(*m).String() }

func (m *modeFlag) Set(v string) error {
	switch v {
	case "tolerate":
		*m = modeFlag(recovery.Tolerate)
	case "strict":
		*m = modeFlag(recovery.Strict)
	case "point-in-time", "pit", "salvage":
		*m = modeFlag(recovery.PointInTime)
	default:
		return fmt.Errorf("unknown mode %q (want tolerate, strict or point-in-time)", v)
	}
	return nil
}
