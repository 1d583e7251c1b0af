package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

const getUsage = `Usage: walrec get FILE KEY [--hex] [--json] [--quiet] [--progress MODE]

Prints the value of KEY in the database FILE, as the database would return it now: FILE is
opened read-only (db.ReadOnly: no lock, nothing written, a running writer is not disturbed),
recovered in memory, and the key looked up. A tail that recovery would cut is left out (a
note on stderr says so; with --json, left_out_bytes). KEY is taken as its bytes; with --hex,
as hexadecimal.

The value is printed as it is, followed by a newline; with --json, one "report" line with
key, found and value (key_hex and value_hex hold bytes that are not UTF-8, the string field
is then null).

Here: 0 found, 1 not found, 2 recovery refuses FILE (corrupt, not a database, ...), 3 an
I/O or usage error.

` + exitCodesHelp

const scanUsage = `Usage: walrec scan FILE [--prefix P | --from K --to K] [--limit N] [--hex] [--json] [--quiet]
                 [--progress MODE]

Prints the live pairs of the database FILE in key order (unsigned bytes), as the database would
return them now: FILE is opened read-only (no lock, nothing written), recovered in memory. With
--prefix, the keys that start with P; with --from and --to, the keys in [K, K) (either may be
left out: from the first, to the last). With --hex, P and K are hexadecimal.

One line a pair: the key, a tab, the value, each quoted (Go syntax) when it is not printable
UTF-8; with --json, one "pair" line each (key, value, and key_hex and value_hex for bytes
that are not UTF-8), then the "report" line (pairs).

Here: 0 listed (none is a listing too), 2 recovery refuses FILE, 3 an I/O or usage error.

` + exitCodesHelp

// getReport is get's report.
type getReport struct {
	jsonHead
	File     string  `json:"file"`
	FileHex  *string `json:"file_hex"`
	Key      *string `json:"key"`
	KeyHex   *string `json:"key_hex"`
	Found    *bool   `json:"found"` // null when the database could not be read
	Value    *string `json:"value"`
	ValueHex *string `json:"value_hex"`
	LeftOut  *int64  `json:"left_out_bytes"` // a tail recovery would cut, left out; null when none
	outcome
}

func cmdGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("get")
	asHex := fs.Bool("hex", false, "KEY is hexadecimal")
	asJSON := fs.Bool("json", false, "print one JSON report line")
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(ctx, fs, getUsage, args, 2, stdout, stderr)
	if !ok {
		return code
	}
	key, err := keyArg(pos[1], *asHex)
	if err != nil {
		fmt.Fprintf(stderr, "walrec get: KEY: %v\nrun \"walrec get --help\" for usage\n", err)
		return exitError
	}
	path := pos[0]
	r := getReport{jsonHead: head("get", "report"), File: path, FileHex: nameHex(&path)}
	r.Key, r.KeyHex = bytesJSON(key)
	out := func(human func(io.Writer)) int {
		return reportOut(ctx, stdout, stderr, "get", path, &r.outcome, *asJSON, of.quiet, &r, human, "")
	}
	d, err := openForReading(ctx, path, of.progress(stderr, "get", path))
	if err != nil {
		r.fail(ctx, err, readHints)
		return out(nil)
	}
	defer d.Close()
	r.LeftOut = leftOut(d, "get", !*asJSON, stderr)
	var value []byte
	found := false
	if err := d.View(func(tx *db.Tx) error {
		v, ok := tx.Get(key)
		value, found = bytes.Clone(v), ok
		return nil
	}); err != nil {
		r.fail(ctx, err, readHints)
		return out(nil)
	}
	r.Found = ptr(found)
	if !found {
		r.succeed("not_found", exitTail)
		if !*asJSON && !of.quiet {
			fmt.Fprintf(stderr, "walrec get: %s: not found\n", shown(key))
		}
		return out(nil)
	}
	r.Value, r.ValueHex = bytesJSON(value)
	r.succeed("found", exitOK)
	return out(func(w io.Writer) {
		w.Write(value)
		w.Write([]byte{'\n'})
	})
}

// scanPair is one --json "pair" line.
type scanPair struct {
	jsonHead
	File     string  `json:"file"`
	FileHex  *string `json:"file_hex"`
	Key      *string `json:"key"`
	KeyHex   *string `json:"key_hex"`
	Value    *string `json:"value"`
	ValueHex *string `json:"value_hex"`
}

// scanReport is scan's report.
type scanReport struct {
	jsonHead
	File    string  `json:"file"`
	FileHex *string `json:"file_hex"`
	Pairs   *int    `json:"pairs"` // listed (before a failure or a signal, if one came)
	LeftOut *int64  `json:"left_out_bytes"`
	outcome
}

func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("scan")
	prefix := fs.String("prefix", "", "only keys that start with `P`")
	from := fs.String("from", "", "the first key `K` (included)")
	to := fs.String("to", "", "the key `K` to stop before (excluded)")
	limit := fs.Int("limit", 0, "at most `N` pairs (0: all)")
	asHex := fs.Bool("hex", false, "P and K are hexadecimal")
	asJSON := fs.Bool("json", false, `one "pair" JSON line each, then the report`)
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(ctx, fs, scanUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "walrec scan: %s\nrun \"walrec scan --help\" for usage\n", msg)
		return exitError
	}
	if *prefix != "" && (*from != "" || *to != "") {
		return usage("--prefix and --from/--to do not go together")
	}
	if *limit < 0 {
		return usage("--limit must be 0 or more")
	}
	var lo, hi []byte
	var err error
	if lo, err = keyArg(*from+*prefix, *asHex); err != nil {
		return usage(err.Error())
	}
	if *prefix != "" {
		hi = prefixEnd(lo)
	} else if *to != "" {
		if hi, err = keyArg(*to, *asHex); err != nil {
			return usage(err.Error())
		}
	}
	path := pos[0]
	r := scanReport{jsonHead: head("scan", "report"), File: path, FileHex: nameHex(&path)}
	out := func() int {
		return reportOut(ctx, stdout, stderr, "scan", path, &r.outcome, *asJSON, of.quiet, &r, nil, "")
	}
	d, err := openForReading(ctx, path, of.progress(stderr, "scan", path))
	if err != nil {
		r.fail(ctx, err, readHints)
		return out()
	}
	defer d.Close()
	r.LeftOut = leftOut(d, "scan", !*asJSON, stderr)
	w := &errWriter{w: stdout}
	n := 0
	err = d.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(lo, hi) {
			if *limit > 0 && n == *limit || w.err != nil || ctx.Err() != nil {
				break
			}
			n++
			if of.quiet {
				continue
			}
			if *asJSON {
				p := scanPair{jsonHead: head("scan", "pair"), File: path, FileHex: r.FileHex}
				p.Key, p.KeyHex = bytesJSON(k)
				p.Value, p.ValueHex = bytesJSON(v)
				writeJSON(w, p)
			} else {
				fmt.Fprintf(w, "%s\t%s\n", shown(k), shown(v))
			}
		}
		return nil
	})
	r.Pairs = ptr(n)
	switch {
	case w.err != nil:
		return writeFailed(ctx, stderr, "scan", path, exitError, w.err, "")
	case err != nil:
		r.fail(ctx, err, readHints)
	case ctx.Err() != nil:
		r.fail(ctx, walerr.New(walerr.Canceled, -1, fmt.Sprintf("stopped after %s", plural(n, "pair"))), readHints)
	default:
		r.succeed("listed", exitOK)
	}
	return out()
}

// readHints are get's and scan's words for what to do, by code.
var readHints = map[walerr.Code]string{
	walerr.CorruptWAL: "acknowledged records may follow the damage: walrec salvage FILE --output COPY copies every record that verifies, and get or scan can then read COPY",
}

// openForReading opens the database read-only for get and scan, its recovery's progress on p.
func openForReading(ctx context.Context, path string, p *progress) (*db.DB, error) {
	defer p.done()
	if err := regularFile(path); err != nil { // db.Open would not create it read-only, but would block on a FIFO
		return nil, err
	}
	return db.OpenContext(ctx, path, db.ReadOnly(), db.WithRecovery(recovery.WithProgress(p.callback())))
}

// leftOut is the size of a tail recovery would cut, which the read-only open left out (null
// for none), said on stderr too in text.
func leftOut(d *db.DB, cmd string, say bool, stderr io.Writer) *int64 {
	t := d.Truncation()
	if t == nil {
		return nil
	}
	if say {
		fmt.Fprintf(stderr, "walrec %s: note: the last %d bytes (from offset %d, %s) are a tail recovery would cut: left out\n", cmd, t.Bytes, t.Offset, t.Reason)
	}
	return ptr(t.Bytes)
}

// bytesJSON is b for JSON: as a string when it is UTF-8 (hex null), else hex (string null).
func bytesJSON(b []byte) (*string, *string) {
	if utf8.Valid(b) {
		return ptr(string(b)), nil
	}
	return nil, ptr(hex.EncodeToString(b))
}

// keyArg is a key given on the command line: its bytes, or hexadecimal.
func keyArg(s string, asHex bool) ([]byte, error) {
	if !asHex {
		return []byte(s), nil
	}
	return hex.DecodeString(s)
}

// prefixEnd is the first key after every key that starts with p (nil: none, p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// shown is b as it is when it is printable UTF-8 (no tab, no quote), and quoted otherwise.
func shown(b []byte) string {
	if len(b) > 0 && printable(b) && !bytes.ContainsAny(b, "\"") {
		return string(b)
	}
	return strconv.Quote(string(b))
}

// Registered here rather than in main.go's table, so that these commands are one file.
func init() {
	commands["get"] = command{cmdGet}
	commands["scan"] = command{cmdScan}
}
