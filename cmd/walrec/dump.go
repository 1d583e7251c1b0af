package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
)

const dumpUsage = `Usage: walrec dump FILE [--json] [--max-bytes N] [--mode tolerate|strict|point-in-time]
                   [--max-record-size N]

Prints the records of FILE and their ops, read-only (O_RDONLY, no lock, no write): for each
record its offset, length and checksum status, then each op, "set KEY = VALUE" or
"delete KEY", with keys and values quoted when they are printable text and in hex
otherwise (cut after --max-bytes bytes). The records shown are exactly the ones recovery
replays, so the dump stops at the first bad record; after it comes what recovery says about
the rest, the report of "walrec verify".

With --json it prints JSON lines, one per op:
  {"record": N, "offset": OFFSET, "op": "set"|"delete", "key_hex": "...", "value_hex": "..."|null}
and, last, one line holding the verify report (it has an "outcome" field).

Exit status: as for "walrec verify".

` + exitCodesHelp

// dumpOp is one --json line.
type dumpOp struct {
	Record   int64   `json:"record"`
	Offset   int64   `json:"offset"`
	Op       string  `json:"op"`
	KeyHex   string  `json:"key_hex"`
	ValueHex *string `json:"value_hex"`
}

func cmdDump(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("dump")
	var rf recoveryFlags
	rf.register(fs, true, -1)
	rf.parallelism = 1 // the plain sequential loop: a dump is for reading, not speed
	maxBytes := fs.Int("max-bytes", 64, "show at most this many bytes of each key and value (0: all)")
	pos, code, ok := parseFlags(fs, dumpUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	path := pos[0]
	w := bufio.NewWriterSize(stdout, 64<<10)
	hdr := sniffHeaderSize(path)
	crcStatus := "header and payload checksums ok"
	if hdr == format.LegacyHeaderSize {
		crcStatus = "payload checksum ok"
	}
	var n int64
	app := recovery.ApplyFunc(func(r recovery.Record) error {
		if rf.json {
			for it := r.Ops(); it.Next(); {
				op := it.Op()
				line := dumpOp{Record: n, Offset: r.Offset, Op: op.Kind.String(), KeyHex: hex.EncodeToString(op.Key)}
				if op.Kind == format.OpSet {
					line.ValueHex = ptr(hex.EncodeToString(op.Value))
				}
				if err := writeJSON(w, line); err != nil {
					return err
				}
			}
		} else {
			fmt.Fprintf(w, "record %d at offset %d: %d bytes (%d header + %d payload), %s, %s\n",
				n, r.Offset, hdr+len(r.Payload), hdr, len(r.Payload), crcStatus, plural(r.NumOps, "op"))
			for it := r.Ops(); it.Next(); {
				op := it.Op()
				if op.Kind == format.OpSet {
					fmt.Fprintf(w, "  set    %s = %s\n", show(op.Key, *maxBytes), show(op.Value, *maxBytes))
				} else {
					fmt.Fprintf(w, "  delete %s\n", show(op.Key, *maxBytes))
				}
			}
		}
		n++
		_, err := w.Write(nil) // bufio keeps the first write error: stop on it (a closed pipe)
		return err
	})
	// dump streams its records to stdout while it runs: a bar on the same terminal would
	// overwrite them, so it draws one only when stdout goes elsewhere.
	var p *progress
	if !isTerminal(stdout) {
		p = newProgress(stderr, "dump")
	}
	r := verifyFile(ctx, path, &rf, app, p)
	if rf.json {
		writeJSON(w, &r)
	} else {
		if n > 0 {
			fmt.Fprintln(w)
		}
		writeHuman(w, &r, nil)
	}
	if err := w.Flush(); err != nil && r.Exit < exitError {
		fmt.Fprintf(stderr, "walrec dump: writing the dump: %v\n", err)
		return exitError
	}
	errorLine(stderr, "dump", &r)
	return r.Exit
}

// sniffHeaderSize is the record header size of the file at path, for the lengths dump prints:
// 12 when it starts with the v1 magic, else 8. (Recovery decides the layout; when it refuses
// the file no record is printed at all.)
func sniffHeaderSize(path string) int {
	f, err := openInput(path)
	if err != nil {
		return format.V1HeaderSize
	}
	defer f.Close()
	var b [4]byte
	if f.Size() >= 4 {
		if _, err := f.ReadAt(b[:], 0); err == nil && string(b[:]) != string(format.FileHeader[:4]) {
			return format.LegacyHeaderSize
		}
	}
	return format.V1HeaderSize
}

// show writes b quoted when it is printable text, else in hex, cut after max bytes (0: all).
func show(b []byte, max int) string {
	cut := b
	if max > 0 && len(b) > max {
		cut = b[:max]
	}
	var s string
	if printable(b) {
		for len(cut) < len(b) && len(cut) > 0 && !utf8.RuneStart(b[len(cut)]) {
			cut = cut[:len(cut)-1]
		}
		s = strconv.Quote(string(cut))
	} else {
		s = "0x" + hex.EncodeToString(cut)
	}
	if len(cut) < len(b) {
		s += fmt.Sprintf("... (%d bytes)", len(b))
	}
	return s
}

// printable: valid UTF-8 with every rune a graphic character or a plain space.
func printable(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}
