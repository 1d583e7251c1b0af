package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

// The JSON convention, one for every command's --json:
//
// JSON Lines on stdout: one object a line, each beginning with "version" (jsonVersion),
// "command" (the command that wrote it) and "type" (what the line is). Items ("op",
// "bad_record", "row", "pair", "sidecar", "skipped") come first, as the command finds them;
// the run ends with one "report" per FILE, which always has "outcome", "code", "detail",
// "hint", "error", "signal" and "exit" (the process's exit status) besides the command's own
// fields. Every field of a type is always present, null when it does not apply.
//
// Why lines and not one document: dump and scan stream without bound (the dump of a 100 GiB
// log cannot be held in memory to be closed as one array), a reader that stops early (head,
// a crash, a signal) still holds whole objects, and several FILEs are simply several
// reports. Why a version and the command on every line: a line needs no context to be
// read, so output can be filtered (grep, jq -c 'select(.type=="report")') or concatenated
// from several runs and still be understood.
const jsonVersion = 1

const jsonHelp = `JSON (--json, every command): JSON Lines on stdout, one object a line, each beginning
with "version": 1, "command" and "type". Items ("op", "bad_record", "row", "pair",
"sidecar", "skipped") come first, as found; the run ends with one "report" per FILE, which
has "outcome", "code", "detail", "hint", "error", "signal" (the signal that stopped it, or
null) and "exit" (the exit status) besides the command's own fields. Every field of a type
is always present, null when it does not apply; a name that is not UTF-8 has its bytes in
hex in the "..._hex" field beside it. --progress json writes "progress" lines on stderr.
`

// jsonHead begins every JSON line.
type jsonHead struct {
	Version int    `json:"version"`
	Command string `json:"command"`
	Type    string `json:"type"`
}

func head(cmd, typ string) jsonHead { return jsonHead{jsonVersion, cmd, typ} }

// optString is a string that is JSON null when empty.
type optString string

func (s optString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// outcome is the part every report ends with: what happened, in a word and a code, what was
// found, what to do, the full error, the signal that stopped the command, and the exit
// status.
type outcome struct {
	Outcome string    `json:"outcome"`
	Code    *string   `json:"code"`
	Offset  *int64    `json:"offset"` // where in the file the damage or error is, null when nowhere
	Detail  optString `json:"detail"`
	Hint    optString `json:"hint"`
	Error   optString `json:"error"`
	Signal  *string   `json:"signal"`
	Exit    int       `json:"exit"`
}

// succeed sets the outcome of a success (or a finding, exit 1).
func (o *outcome) succeed(word string, exit int) { o.Outcome, o.Exit = word, exit }

// fail sets the outcome from err, the command's failure: its class (outcome, code, exit
// status), what was found, and what to do, with walrec's hints (hints, by code, for this
// command) rather than the library's, which name Go options. A failure after a signal is
// the signal's (stopCode).
func (o *outcome) fail(ctx context.Context, err error, hints map[walerr.Code]string) {
	o.Error = optString(err.Error())
	o.Outcome, o.Exit = outIO, exitError
	var we *walerr.Error
	switch {
	case errors.As(err, &we):
		o.Code = ptr(string(we.Code))
		o.Detail = optString(strings.TrimPrefix(we.Detail+": "+errCause(we.Err), ": "))
		if we.Err == nil {
			o.Detail = optString(we.Detail)
		}
		o.Hint = optString(we.Hint)
		o.Outcome, o.Exit = classOf(we.Code)
		if we.Offset >= 0 {
			o.Offset = ptr(we.Offset)
		}
		if we.Code == db.CodeLocked {
			o.Error = optString(lockedError(we))
			o.Detail = "another process has the database open for writing (it holds the writer's lock)"
			o.Hint = "close it first; walrec verify, get and scan read it without the lock"
		}
		if h, ok := hints[we.Code]; ok {
			o.Hint = optString(h)
		}
	case errors.Is(err, context.Canceled):
		o.Code, o.Outcome, o.Detail = ptr(string(walerr.Canceled)), outCanceled, "stopped"
	default:
		o.Detail = optString(errText(err))
		var pe *fs.PathError
		if errors.As(err, &pe) && error(pe) == err {
			o.Detail = optString(pe.Err.Error()) // "no such file or directory": the report names the file
		}
	}
	if ctx.Err() != nil && o.Code == nil { // stopped by its context: canceled, whatever the error says
		o.Outcome, o.Code = outCanceled, ptr(string(walerr.Canceled))
	}
}

// stop gives a command that a signal reached before its report was written the signal's
// exit status, 128+N, and names it; a failure it caused is CANCELED (see report.stop).
func (o *outcome) stop(ctx context.Context) {
	n := stopSignal(ctx)
	if n == 0 {
		return
	}
	if o.Exit >= exitError && o.Outcome != outCanceled {
		o.Outcome, o.Code = outCanceled, ptr(string(walerr.Canceled))
	}
	o.Exit, o.Signal = 128+n, ptr(signalName(n))
}

// errCause is the cause's message without the path a *fs.PathError repeats.
func errCause(err error) string {
	if err == nil {
		return ""
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(err, pe.Err) && err == error(pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// classOf is a code's outcome word and exit status.
func classOf(c walerr.Code) (string, int) {
	switch c {
	case walerr.CorruptWAL:
		return outCorrupt, exitRefused
	case walerr.NotADatabase:
		return outNotDB, exitRefused
	case walerr.UnsupportedVersion:
		return outUnsupported, exitRefused
	case walerr.RecordTooLarge:
		return outTooLarge, exitRefused
	case walerr.TailDamage:
		return outTailDamage, exitRefused
	case walerr.Rewritten:
		return "rewritten", exitRefused
	case walerr.IncompleteRead:
		return outIncomplete, exitError
	case walerr.Canceled:
		return outCanceled, exitError
	case walerr.InvalidArgument:
		return outInvalid, exitError
	case walerr.Locked:
		return outLocked, exitError
	case walerr.Identity:
		return "identity", exitError
	case walerr.SidecarsFull:
		return "sidecars_full", exitError
	}
	return outIO, exitError
}

// line is the one line on stderr that says a failure in text mode ("walrec compact FILE:
// CODE at offset N: what was found; what to do"), for the commands whose text report on
// success is short and which say a failure only there.
func (o *outcome) line(cmd, file string) string {
	msg := string(o.Detail)
	if o.Code != nil {
		msg = *o.Code
		if o.Offset != nil {
			msg += fmt.Sprintf(" at offset %d", *o.Offset)
		}
		if o.Detail != "" {
			msg += ": " + string(o.Detail)
		}
	}
	if o.Hint != "" {
		msg += "; " + string(o.Hint)
	}
	if o.Signal != nil {
		msg = fmt.Sprintf("stopped by %s (exit %d): %s", *o.Signal, o.Exit, msg)
	}
	if file == "" {
		return fmt.Sprintf("walrec %s: %s\n", cmd, msg)
	}
	return fmt.Sprintf("walrec %s %s: %s\n", cmd, quoteName(file), msg)
}

// reportOut writes a command's report: JSON (a line), or text through human (on success,
// or with what was done before a failure) with the failure's one line on stderr. A report
// that cannot be written is an error, and one whose reader went away (SIGPIPE) is 141, with
// what the command had done said on stderr when it changed something (done, "" for a
// read-only command).
func reportOut(ctx context.Context, stdout, stderr io.Writer, cmd, file string, o *outcome, asJSON, quiet bool, v any, human func(w io.Writer), done string) int {
	o.stop(ctx)
	w := &errWriter{w: stdout}
	switch {
	case quiet:
	case asJSON:
		writeJSON(w, v)
	default:
		if human != nil {
			human(w)
		}
	}
	if !asJSON && o.Exit >= exitRefused && o.Outcome != "" && (o.Signal == nil || o.Outcome == outCanceled) {
		io.WriteString(stderr, o.line(cmd, file))
	}
	if w.err != nil {
		return writeFailed(ctx, stderr, cmd, file, o.Exit, w.err, done)
	}
	return o.Exit
}

// writeFailed is the exit status of a command whose report could not be written: 141 when
// its reader went away (with a line on stderr saying what was done, if anything was), else
// an error.
func writeFailed(ctx context.Context, stderr io.Writer, cmd, file string, exit int, err error, done string) int {
	name := ""
	if file != "" {
		name = " " + quoteName(file)
	}
	if isEPIPE(err) {
		code := stopCode(ctx)
		if done != "" {
			sig := "the reader of stdout went away"
			if s := stopped(ctx); s != nil {
				sig = fmt.Sprintf("stopped by %s (exit %d): the reader of stdout went away", *s, code)
			}
			fmt.Fprintf(stderr, "walrec %s%s: %s before the report was written; done: %s\n", cmd, name, sig, done)
		}
		return code
	}
	msg := "cannot write the report"
	if done != "" {
		msg = "done: " + done + "; but cannot write the report"
	}
	fmt.Fprintf(stderr, "walrec %s%s: %s: %v\n", cmd, name, msg, err)
	return max(exit, exitError)
}
