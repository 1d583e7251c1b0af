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

const dumpUsage = `Usage: walrec dump FILE... [--json] [--max-bytes N] [--mode tolerate|strict|point-in-time]
                   [--max-record-size N] [--from N] [--start-offset OFFSET] [--end-offset OFFSET]
                   [--limit N] [--bad-bytes N] [--quiet] [--progress MODE]

Prints the records of FILE and their ops, read-only (O_RDONLY, no lock, no write): for each
record its offset, length and checksum status, then each op, "set KEY = VALUE" or
"delete KEY", with keys and values quoted when they are printable text and in hex
otherwise (cut after --max-bytes bytes). The records shown are exactly the ones recovery
replays, so the dump stops at the first bad record. Then comes the bad record itself, if
there is one: its header decoded (length, checksums, how many of its bytes the file holds)
and its first --bad-bytes bytes in hex, at their offsets in the file. Last comes what
recovery says about the rest, the report of "walrec verify".

--from N, --start-offset OFFSET, --end-offset OFFSET and --limit N choose which records are
printed: from record number N (counting from 0), or from the first record at or after byte
OFFSET, up to the first record at or after --end-offset, and at most N of them. The whole
file is still read and checked, so the report and the exit status stay those of "walrec
verify"; when they choose no record, a note says how many the log has.

Several FILEs are dumped one after the other, each under a heading "== FILE ==" (in JSON,
every line names its file); the exit status is the worst of theirs.

With --json it prints, per FILE, one "op" line per op (file, record, offset, op, key_hex,
key_bytes, value_hex, value_bytes: keys and values cut after --max-bytes bytes as in text,
their whole lengths beside them; value null for a delete), then, for a bad record, one
"bad_record" line (offset, available, length, length_ok, stored_crc, computed_crc, hex),
and, last, the "report" line of "walrec verify" with shown (the records printed) and note.
--quiet prints the records and no report.

Exit status: as for "walrec verify".

` + exitCodesHelp

// dumpOp is one --json "op" line. Keys and values are cut after --max-bytes bytes, as in
// text; key_bytes and value_bytes are their whole lengths.
type dumpOp struct {
	jsonHead
	File       string  `json:"file"`
	FileHex    *string `json:"file_hex"`
	Record     int64   `json:"record"`
	Offset     int64   `json:"offset"`
	Op         string  `json:"op"`
	KeyHex     string  `json:"key_hex"`
	KeyBytes   int     `json:"key_bytes"`
	ValueHex   *string `json:"value_hex"`   // null for a delete
	ValueBytes *int    `json:"value_bytes"` // null for a delete
}

// dumpReport is dump's report: verify's, plus what was printed.
type dumpReport struct {
	report
	Shown int64     `json:"shown"` // records printed
	Note  optString `json:"note"`  // why none were, when --from, --start-offset or --end-offset chose none
}

// dumpOpts are dump's own flags.
type dumpOpts struct {
	maxBytes         int
	from, limit      int64
	startOff, endOff int64
	badBytes         int
	several          bool // more than one FILE: each gets a heading in text
}

func cmdDump(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("dump")
	var rf recoveryFlags
	rf.register(fs, true, -1)
	rf.parallelism = 1 // the plain sequential loop: a dump is for reading, not speed
	var do dumpOpts
	fs.IntVar(&do.maxBytes, "max-bytes", 64, "show at most this many bytes of each key and value, in text and JSON (0: all)")
	fs.Int64Var(&do.from, "from", 0, "print records from this record number on (0: the first)")
	fs.Int64Var(&do.startOff, "start-offset", 0, "print records from the first one at or after this byte offset")
	fs.Int64Var(&do.endOff, "end-offset", 0, "print no record at or after this byte offset (0: to the end)")
	fs.Int64Var(&do.limit, "limit", 0, "print at most this many records (0: all)")
	fs.IntVar(&do.badBytes, "bad-bytes", 256, "show this many bytes of the bad record, in hex (0: none)")
	pos, code, ok := parseFlags(ctx, fs, dumpUsage, args, oneOrMore, stdout, stderr)
	if !ok {
		return code
	}
	if !rf.check(fs, stderr) {
		return exitError
	}
	if do.from < 0 || do.startOff < 0 || do.endOff < 0 || do.limit < 0 || do.badBytes < 0 || do.badBytes > 1<<20 || do.maxBytes < 0 {
		fmt.Fprintf(stderr, "walrec dump: --from, --start-offset, --end-offset, --limit and --max-bytes must be >= 0, --bad-bytes in [0, 1048576]\nrun \"walrec dump --help\" for usage\n")
		return exitError
	}
	do.several = len(pos) > 1
	worst := exitOK
	for i, path := range pos {
		code := dumpFile(ctx, path, &rf, &do, i > 0, stdout, stderr)
		worst = max(worst, code) // the worst: 0 < 1 < 2 < 3 < 128+N
		if code > exitError || ctx.Err() != nil {
			break // a signal (or a reader gone) ends the run
		}
	}
	return worst
}

// dumpFile dumps one file and returns its exit status.
func dumpFile(ctx context.Context, path string, rf *recoveryFlags, do *dumpOpts, sep bool, stdout, stderr io.Writer) int {
	w := bufio.NewWriterSize(stdout, 64<<10)
	if !rf.json && do.several {
		if sep {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s ==\n", quoteName(path))
	}
	hdr := sniffHeaderSize(path)
	crcStatus := "header and payload checksums ok"
	if hdr == format.LegacyHeaderSize {
		crcStatus = "payload checksum ok"
	}
	fileHex := nameHex(&path)
	cut := func(b []byte) []byte {
		if do.maxBytes > 0 && len(b) > do.maxBytes {
			return b[:do.maxBytes]
		}
		return b
	}
	var n, shown int64
	var last int64 = -1 // the offset of the last record
	app := recovery.ApplyFunc(func(r recovery.Record) error {
		last = r.Offset
		if n < do.from || r.Offset < do.startOff || do.endOff > 0 && r.Offset >= do.endOff || do.limit > 0 && shown >= do.limit {
			n++
			return nil
		}
		shown++
		if rf.json {
			for it := r.Ops(); it.Next(); {
				op := it.Op()
				line := dumpOp{jsonHead: head("dump", "op"), File: path, FileHex: fileHex, Record: n, Offset: r.Offset, Op: op.Kind.String(),
					KeyHex: hex.EncodeToString(cut(op.Key)), KeyBytes: len(op.Key)}
				if op.Kind == format.OpSet {
					line.ValueHex, line.ValueBytes = ptr(hex.EncodeToString(cut(op.Value))), ptr(len(op.Value))
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
					fmt.Fprintf(w, "  set    %s = %s\n", show(op.Key, do.maxBytes), show(op.Value, do.maxBytes))
				} else {
					fmt.Fprintf(w, "  delete %s\n", show(op.Key, do.maxBytes))
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
	if !isTerminal(stdout) || !rf.barOnly(stderr) {
		p = rf.progress(stderr, "dump", path)
	}
	dr := dumpReport{report: verifyFile(ctx, "dump", path, rf, app, p), Shown: shown}
	r := &dr.report
	r.stop(ctx)
	if shown == 0 && n > 0 && (do.from > 0 || do.startOff > 0 || do.endOff > 0) {
		dr.Note = optString(fmt.Sprintf("no record chosen: the log has %s (numbers 0 to %d, the last at offset %d)", plural64(n, "record"), n-1, last))
	}
	if dr.Note != "" && !rf.json && !rf.quiet {
		fmt.Fprintf(w, "(%s)\n", dr.Note)
	}
	if do.badBytes > 0 || rf.json {
		showBad(ctx, w, path, r, hdr, do.badBytes, rf.json, shown > 0 || dr.Note != "")
	}
	switch {
	case rf.quiet:
	case rf.json:
		r.prepareJSON("dump")
		writeJSON(w, &dr)
	default:
		if shown > 0 || r.Offset != nil && r.Exit > exitOK || dr.Note != "" {
			fmt.Fprintln(w)
		}
		writeHuman(w, r, nil)
	}
	err := w.Flush()
	if rf.quiet || !rf.json && !isTerminal(stdout) {
		errorLine(stderr, "dump", r, nil)
	}
	if err != nil {
		return writeFailed(ctx, stderr, "dump", "", r.Exit, fmt.Errorf("writing the dump: %w", err), "")
	}
	return r.Exit
}

// badRecord is the record recovery stopped at, as --json's "bad_record" line shows it.
type badRecord struct {
	jsonHead
	File        string  `json:"file"`
	FileHex     *string `json:"file_hex"`
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
	b := badRecord{jsonHead: head("dump", "bad_record"), File: path, FileHex: nameHex(&path), Offset: off, Available: f.Size() - off}
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
		writeJSON(w, b)
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
