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
	"github.com/streamwal/recovery/walerr"
)

const dumpUsage = `Usage: walrec dump FILE [--json] [--max-bytes N] [--mode tolerate|strict|point-in-time]
                   [--max-record-size N] [--from N] [--start-offset OFFSET] [--limit N]
                   [--bad-bytes N] [--quiet] [--no-progress]

Prints the records of FILE and their ops, read-only (O_RDONLY, no lock, no write): for each
record its offset, length and checksum status, then each op, "set KEY = VALUE" or
"delete KEY", with keys and values quoted when they are printable text and in hex
otherwise (cut after --max-bytes bytes). The records shown are exactly the ones recovery
replays, so the dump stops at the first bad record. Then comes the bad record itself, if
there is one: its header decoded (length, checksums, how many of its bytes the file holds)
and its first --bad-bytes bytes in hex, at their offsets in the file. Last comes what
recovery says about the rest, the report of "walrec verify".

--from N, --start-offset OFFSET and --limit N choose which records are printed: from record
number N (counting from 0), or from the first record at or after byte OFFSET, and at most N
of them. The whole file is still read and checked, so the report and the exit status stay
those of "walrec verify".

With --json it prints JSON lines, one per op:
  {"record": N, "offset": OFFSET, "op": "set"|"delete", "key_hex": "...", "value_hex": "..."|null}
then, for a bad record, one line {"bad_record": {...}} (offset, header fields, hex), and,
last, one line holding the verify report (it has an "outcome" field). --quiet prints the
records and no report.

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
	from := fs.Int64("from", 0, "print records from this record number on (0: the first)")
	startOff := fs.Int64("start-offset", 0, "print records from the first one at or after this byte offset")
	limit := fs.Int64("limit", 0, "print at most this many records (0: all)")
	badBytes := fs.Int("bad-bytes", 256, "show this many bytes of the bad record, in hex (0: none)")
	pos, code, ok := parseFlags(fs, dumpUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	if *from < 0 || *startOff < 0 || *limit < 0 || *badBytes < 0 || *badBytes > 1<<20 || *maxBytes < 0 {
		fmt.Fprintf(stderr, "walrec dump: --from, --start-offset, --limit and --max-bytes must be >= 0, --bad-bytes in [0, 1048576]\nrun \"walrec dump --help\" for usage\n")
		return exitError
	}
	path := pos[0]
	w := bufio.NewWriterSize(stdout, 64<<10)
	hdr := sniffHeaderSize(path)
	crcStatus := "header and payload checksums ok"
	if hdr == format.LegacyHeaderSize {
		crcStatus = "payload checksum ok"
	}
	var n, shown int64
	app := recovery.ApplyFunc(func(r recovery.Record) error {
		if n < *from || r.Offset < *startOff || *limit > 0 && shown >= *limit {
			n++
			return nil
		}
		shown++
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
				n, r.Offset, hdr+len(r.Payload), hdr, len(r.Payload), crcStatus, plural(r.NumOps(), "op"))
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
		p = rf.progress(stderr, "dump")
	}
	r := verifyFile(ctx, path, &rf, app, p)
	if *badBytes > 0 || rf.json {
		showBad(ctx, w, path, &r, hdr, *badBytes, rf.json, shown > 0)
	}
	switch {
	case rf.quiet:
	case rf.json:
		r.prepareJSON()
		writeJSON(w, &r)
	default:
		if shown > 0 || r.Offset != nil && r.Exit > exitOK {
			fmt.Fprintln(w)
		}
		writeHuman(w, &r, nil)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "walrec dump: writing the dump: %v\n", err)
		return max(r.Exit, exitError)
	}
	if rf.quiet || !rf.json && !isTerminal(stdout) {
		errorLine(stderr, "dump", &r)
	}
	return r.Exit
}

// badRecord is the record recovery stopped at, as --json shows it.
type badRecord struct {
	Offset      int64   `json:"offset"`
	Available   int64   `json:"available"`    // bytes of the file from offset on
	Length      *uint32 `json:"length"`       // the header's payload length, null without a whole header
	LengthOK    *bool   `json:"length_ok"`    // v1: the length's self-checksum holds; null for legacy
	StoredCRC   *string `json:"stored_crc"`   // the header's payload checksum
	ComputedCRC *string `json:"computed_crc"` // the checksum of the payload bytes, null unless all are in the file
	Hex         string  `json:"hex"`          // the first --bad-bytes bytes from offset
}

// showBad prints the bytes recovery stopped at: the record header decoded and a hex dump.
func showBad(ctx context.Context, w io.Writer, path string, r *report, hdr, n int, asJSON, gap bool) {
	if r.Offset == nil || r.Exit == exitOK || r.notOpened {
		return
	}
	f, err := openInput(path)
	if err != nil {
		return
	}
	defer f.Close()
	off := *r.Offset
	if off >= f.Size() {
		return
	}
	b := badRecord{Offset: off, Available: f.Size() - off}
	head := make([]byte, min(int64(n), b.Available))
	if walerr.ReadFull(f, head, off) != nil {
		return
	}
	b.Hex = hex.EncodeToString(head)
	layout := ""
	if r.Layout != nil {
		layout = *r.Layout
	}
	firstRecord := int64(0)
	if layout == "v1" {
		firstRecord = format.FileHeaderSize
	}
	if layout != "" && off >= firstRecord && b.Available >= int64(hdr) {
		var h [format.V1HeaderSize]byte
		if walerr.ReadFull(f, h[:hdr], off) == nil {
			var stored uint32
			if hdr == format.V1HeaderSize {
				v := format.DecodeV1Header(h[:])
				b.Length, b.LengthOK, stored = ptr(v.Length), ptr(v.SelfCheckOK()), v.PayloadCRC
			} else {
				v := format.DecodeLegacyHeader(h[:])
				b.Length, stored = ptr(v.Length), v.PayloadCRC
			}
			b.StoredCRC = ptr(fmt.Sprintf("%08x", stored))
			if need := int64(hdr) + int64(*b.Length); need <= b.Available && (b.LengthOK == nil || *b.LengthOK) {
				if crc, err := streamCRC(ctx, f, off+int64(hdr), int64(*b.Length)); err == nil {
					b.ComputedCRC = ptr(fmt.Sprintf("%08x", crc))
				}
			}
		}
	}
	if asJSON {
		writeJSON(w, map[string]any{"bad_record": b})
		return
	}
	if gap {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "the bad record: recovery stopped at offset %d, with %s of the file from there on\n", off, plural64(b.Available, "byte"))
	if b.Length != nil {
		s := fmt.Sprintf("  header    payload length %d", *b.Length)
		if b.LengthOK != nil {
			s += map[bool]string{true: " (its checksum holds)", false: " (its checksum does NOT hold)"}[*b.LengthOK]
		}
		s += ", payload checksum " + *b.StoredCRC
		switch {
		case b.ComputedCRC != nil && *b.ComputedCRC == *b.StoredCRC:
			s += " (matches the payload)"
		case b.ComputedCRC != nil:
			s += " (the payload's is " + *b.ComputedCRC + ")"
		case int64(hdr)+int64(*b.Length) > b.Available:
			s += fmt.Sprintf(" (the record needs %d bytes; the file holds %d)", int64(hdr)+int64(*b.Length), b.Available)
		}
		fmt.Fprintln(w, s)
	}
	for i := 0; i < len(head); i += 16 {
		row := head[i:min(i+16, len(head))]
		var text []byte
		for _, c := range row {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			text = append(text, c)
		}
		fmt.Fprintf(w, "  %010d  %-47s  |%s|\n", off+int64(i), spacedHex(row), text)
	}
	if int64(len(head)) < b.Available {
		fmt.Fprintf(w, "  ... (%d more bytes; --bad-bytes N shows more)\n", b.Available-int64(len(head)))
	}
}

// spacedHex is "0a 1b 2c ...".
func spacedHex(b []byte) string {
	s := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			s = append(s, ' ')
		}
		s = hex.AppendEncode(s, []byte{c})
	}
	return string(s)
}

// streamCRC is the checksum of n bytes of f from off, read a MiB at a time.
func streamCRC(ctx context.Context, f io.ReaderAt, off, n int64) (uint32, error) {
	buf := make([]byte, min(n, 1<<20))
	var crc uint32
	for done := int64(0); done < n; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		k := min(int64(len(buf)), n-done)
		if err := walerr.ReadFull(f, buf[:k], off+done); err != nil {
			return 0, err
		}
		crc = format.UpdateChecksum(crc, buf[:k])
		done += k
	}
	return crc, nil
}

func plural64(n int64, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
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
