package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

const getUsage = `Usage: walrec get FILE KEY [--hex] [--json] [--quiet]

Prints the value of KEY in the database FILE, as the database would return it now: FILE is
opened read-only (db.ReadOnly: no lock, nothing written, a running writer is not disturbed),
recovered in memory, and the key looked up. A tail that recovery would cut is left out (a
note on stderr says so). KEY is taken as its bytes; with --hex, as hexadecimal.

The value is printed as it is, followed by a newline; with --json, as one object
{"key", "found", "value"} (with "key_hex" and "value_hex" for bytes that are not UTF-8).

Exit status:
  0  found
  1  not found
  2  recovery refuses FILE (corrupt, not a database, ...)
  3  an I/O or usage error
`

const scanUsage = `Usage: walrec scan FILE [--prefix P | --from K --to K] [--limit N] [--hex] [--json] [--quiet]

Prints the live pairs of the database FILE in key order (unsigned bytes), as the database would
return them now: FILE is opened read-only (no lock, nothing written), recovered in memory. With
--prefix, the keys that start with P; with --from and --to, the keys in [K, K) (either may be
left out: from the first, to the last). With --hex, P and K are hexadecimal.

One line a pair: the key, a tab, the value, each quoted (Go syntax) when it is not printable
UTF-8; with --json, one object a line {"key", "value"} (with "key_hex" and "value_hex" for
bytes that are not UTF-8).

Exit status:
  0  listed (none is a listing too)
  2  recovery refuses FILE
  3  an I/O or usage error
`

func cmdGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("get")
	asHex := fs.Bool("hex", false, "KEY is hexadecimal")
	asJSON := fs.Bool("json", false, "print one JSON object")
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(fs, getUsage, args, 2, stdout, stderr)
	if !ok {
		return code
	}
	key, err := keyArg(pos[1], *asHex)
	if err != nil {
		fmt.Fprintf(stderr, "walrec get: KEY: %v\n", err)
		return exitError
	}
	d, code := openForReading(ctx, "get", pos[0], stderr)
	if d == nil {
		return code
	}
	defer d.Close()
	var value []byte
	found := false
	if err := d.View(func(tx *db.Tx) error {
		v, ok := tx.Get(key)
		value, found = bytes.Clone(v), ok
		return nil
	}); err != nil {
		fmt.Fprintf(stderr, "walrec get: %v\n", err)
		return exitError
	}
	exit := exitOK
	if !found {
		exit = exitTail
	}
	if of.quiet {
		return exit
	}
	w := &errWriter{w: stdout}
	switch {
	case *asJSON:
		o := map[string]any{"found": found, "value": nil}
		putBytes(o, "key", key)
		if found {
			putBytes(o, "value", value)
		}
		writeJSON(w, o)
	case found:
		w.Write(value)
		w.Write([]byte{'\n'})
	default:
		fmt.Fprintf(stderr, "walrec get: %s: not found\n", shown(key))
	}
	if w.err != nil {
		fmt.Fprintf(stderr, "walrec get: %v\n", w.err)
		return exitError
	}
	return exit
}

func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("scan")
	prefix := fs.String("prefix", "", "only keys that start with `P`")
	from := fs.String("from", "", "the first key `K` (included)")
	to := fs.String("to", "", "the key `K` to stop before (excluded)")
	limit := fs.Int("limit", 0, "at most `N` pairs (0: all)")
	asHex := fs.Bool("hex", false, "P and K are hexadecimal")
	asJSON := fs.Bool("json", false, "one JSON object a line")
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(fs, scanUsage, args, 1, stdout, stderr)
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
	d, code := openForReading(ctx, "scan", pos[0], stderr)
	if d == nil {
		return code
	}
	defer d.Close()
	w := &errWriter{w: stdout}
	n := 0
	if err := d.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(lo, hi) {
			if *limit > 0 && n == *limit || w.err != nil || ctx.Err() != nil {
				break
			}
			n++
			if of.quiet {
				continue
			}
			if *asJSON {
				o := map[string]any{}
				putBytes(o, "key", k)
				putBytes(o, "value", v)
				writeJSON(w, o)
			} else {
				fmt.Fprintf(w, "%s\t%s\n", shown(k), shown(v))
			}
		}
		return nil
	}); err != nil {
		fmt.Fprintf(stderr, "walrec scan: %v\n", err)
		return exitError
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(stderr, "walrec scan: stopped after %d pairs\n", n)
		return exitError
	}
	if w.err != nil {
		fmt.Fprintf(stderr, "walrec scan: %v\n", w.err)
		return exitError
	}
	return exitOK
}

// openForReading opens the database read-only for get and scan; on failure it reports and
// returns nil and the exit status.
func openForReading(ctx context.Context, cmd, path string, stderr io.Writer) (*db.DB, int) {
	if err := regularFile(path); err != nil { // db.Open would not create it read-only, but would block on a FIFO
		fmt.Fprintf(stderr, "walrec %s: %v\n", cmd, err)
		return nil, exitError
	}
	d, err := db.OpenContext(ctx, path, db.ReadOnly())
	if err != nil {
		fmt.Fprintf(stderr, "walrec %s: %v\n", cmd, err)
		if walerr.IsCorruption(err) {
			return nil, exitRefused
		}
		return nil, exitError
	}
	if t := d.Truncation(); t != nil {
		fmt.Fprintf(stderr, "walrec %s: note: the last %d bytes (from offset %d, %s) are a tail recovery would cut: left out\n", cmd, t.Bytes, t.Offset, t.Reason)
	}
	return d, exitOK
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

// putBytes sets o[name] to b as a string when it is UTF-8, and to null with name_hex
// otherwise.
func putBytes(o map[string]any, name string, b []byte) {
	if utf8.Valid(b) {
		o[name] = string(b)
		return
	}
	o[name] = nil
	o[name+"_hex"] = hex.EncodeToString(b)
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
