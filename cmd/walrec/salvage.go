package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

const salvageUsage = `Usage: walrec salvage FILE --output COPY [--max-record 64MiB] [--json] [--quiet] [--progress MODE]

For a log that recovery refuses (corruption in the middle): copies every record of FILE that
verifies, before and after the damage, into a new log COPY, and reports each stretch it
skipped, where and why. FILE is never changed: salvage only reads it.

A record verifies when its header checks out (in a v1 log, the length's own checksum), its
length fits the file and --max-record, its payload's checksum matches, and the payload parses
as ops. After damage, salvage looks for the next record that verifies at every byte offset
(runs of zeros are skipped a word at a time).

COPY is a new database file of FILE's layout. Be careful with it: a transaction after the
damage may depend on one that was lost in it (a value computed from a key the lost one set),
so COPY holds every verified transaction, not necessarily a state the application ever had.
Compare it with your own records before you use it; that is why salvage never works in place.

COPY must not exist; it is written under a temporary name, synced, and linked to COPY only once
complete (a failure or a signal leaves no file under COPY's name).

With --json: one "skipped" line per stretch left out (from, to, bytes, reason), then the
"report" line (output, layout, size, records, output_bytes, skipped, skipped_bytes, note).

Here: 0 salvaged, nothing skipped (FILE was clean); 1 salvaged, with stretches skipped (the
report lists them); 3 an I/O or usage error, COPY exists. A signal leaves nothing under
COPY's name.

` + exitCodesHelp

// salvageSkip is a stretch of FILE that salvage left out.
type salvageSkip struct {
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Reason string `json:"reason"` // why the first offset of the stretch did not hold a record
}

// salvageResult is what the scan found and wrote.
type salvageResult struct {
	Layout  string
	Size    int64
	Records int64 // records copied
	Bytes   int64 // bytes of COPY
	Skipped []salvageSkip
}

// salvageLine is one --json "skipped" line.
type salvageLine struct {
	jsonHead
	File    string  `json:"file"`
	FileHex *string `json:"file_hex"`
	From    int64   `json:"from"`
	To      int64   `json:"to"`
	Bytes   int64   `json:"bytes"`
	Reason  string  `json:"reason"`
}

// salvageReport is salvage's report.
type salvageReport struct {
	jsonHead
	File         string    `json:"file"`
	FileHex      *string   `json:"file_hex"`
	Output       string    `json:"output"`
	OutputHex    *string   `json:"output_hex"`
	Layout       *string   `json:"layout"` // null unless salvaged
	Size         *int64    `json:"size"`
	Records      *int64    `json:"records"`      // records copied
	OutputBytes  *int64    `json:"output_bytes"` // bytes of COPY
	Skipped      *int      `json:"skipped"`      // stretches left out
	SkippedBytes *int64    `json:"skipped_bytes"`
	Note         optString `json:"note"`
	outcome

	skipped []salvageSkip
}

func cmdSalvage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("salvage")
	output := fs.String("output", "", "the new log to write (required; must not exist)")
	maxRecord := sizeFlag(64 << 20)
	fs.Var(&maxRecord, "max-record", "the largest payload to take for a record")
	asJSON := fs.Bool("json", false, `print one "skipped" JSON line per stretch, then the report`)
	var of outFlags
	of.register(fs)
	pos, code, ok := parseFlags(ctx, fs, salvageUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	path := pos[0]
	if *output == "" {
		fmt.Fprintf(stderr, "walrec salvage: --output COPY is required (salvage never works in place)\nrun \"walrec salvage --help\" for usage\n")
		return exitError
	}
	r := salvageReport{jsonHead: head("salvage", "report"), File: path, FileHex: nameHex(&path), Output: *output, OutputHex: nameHex(output)}
	done := ""
	out := func() int {
		return reportOut(ctx, stdout, stderr, "salvage", path, &r.outcome, *asJSON, of.quiet, &r, r.human, done)
	}
	f, err := openInput(path)
	if err != nil {
		r.fail(ctx, err, nil)
		return out()
	}
	defer f.Close()
	p := of.progress(stderr, "salvage", path)
	res, err := salvageTo(ctx, f, *output, int64(maxRecord), p)
	p.done()
	if err != nil {
		r.fail(ctx, err, nil)
		return out()
	}
	var gaps int64
	for _, s := range res.Skipped {
		gaps += s.To - s.From
	}
	r.Layout, r.Size, r.Records, r.OutputBytes = ptr(res.Layout), ptr(res.Size), ptr(res.Records), ptr(res.Bytes)
	r.Skipped, r.SkippedBytes = ptr(len(res.Skipped)), ptr(gaps)
	done = fmt.Sprintf("wrote %s (%d records, %d bytes)", quoteName(*output), res.Records, res.Bytes)
	if len(res.Skipped) > 0 {
		r.succeed("salvaged_with_gaps", exitTail)
		r.Note = "transactions after a skipped stretch may depend on ones lost in it: check COPY before you use it"
	} else {
		r.succeed("salvaged", exitOK)
	}
	if *asJSON && !of.quiet {
		w := &errWriter{w: stdout}
		for _, s := range res.Skipped {
			writeJSON(w, salvageLine{head("salvage", "skipped"), path, r.FileHex, s.From, s.To, s.To - s.From, s.Reason})
		}
		if w.err != nil {
			return writeFailed(ctx, stderr, "salvage", path, r.Exit, w.err, done)
		}
	}
	r.skipped = res.Skipped
	return out()
}

// human is the text report of a salvage.
func (r *salvageReport) human(w io.Writer) {
	if r.Records == nil {
		return
	}
	fmt.Fprintf(w, "%s: %d records, %s, from %s (%s log, %s)\n", quoteName(r.Output), *r.Records, bytesHuman(*r.OutputBytes), quoteName(r.File), *r.Layout, bytesHuman(*r.Size))
	for _, s := range r.skipped {
		fmt.Fprintf(w, "skipped [%d, %d), %s: %s\n", s.From, s.To, bytesHuman(s.To-s.From), s.Reason)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
	if r.Signal != nil && r.Outcome != outCanceled {
		fmt.Fprintf(w, "%s came once COPY was complete: it is kept (exit %d)\n", *r.Signal, r.Exit)
	}
}

// salvageTo writes the records of src that verify to out, through a temporary file linked to
// out only once complete.
func salvageTo(ctx context.Context, src inputFile, out string, maxRecord int64, p *progress) (salvageResult, error) {
	rep := salvageResult{Size: src.Size()}
	err := createNew(out, "salvage", func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		s := &salvager{ctx: ctx, r: src, size: src.Size(), max: maxRecord, w: bw, rep: &rep, p: p}
		if err := s.run(); err != nil {
			return err
		}
		return bw.Flush()
	})
	return rep, err
}

// salvager scans a log for the records that verify.
type salvager struct {
	ctx  context.Context
	r    io.ReaderAt
	size int64
	max  int64
	w    io.Writer
	rep  *salvageResult
	p    *progress

	win    []byte // the file's bytes [winOff, winOff+len(win))
	winOff int64
	skip   *salvageSkip // the stretch being skipped, nil when in step
}

// salvageWindow is how much of the file the scan holds; a larger payload is streamed.
const salvageWindow = 4 << 20

func (s *salvager) run() error {
	layout := format.LayoutLegacy
	head, err := s.at(0, min(s.size, format.FileHeaderSize))
	if err != nil {
		return err
	}
	if len(head) == format.FileHeaderSize && bytes.Equal(head[:4], format.FileHeader[:4]) {
		layout = format.LayoutV1
		if _, err := s.w.Write(format.FileHeader[:]); err != nil {
			return err
		}
		s.rep.Bytes = format.FileHeaderSize
	}
	s.rep.Layout = layout.String()
	hs := int64(layout.HeaderSize())
	check := int64(0) // the next offset at which to look at ctx
	for off := layout.FirstRecord(); off < s.size; {
		if off >= check {
			if err := s.ctx.Err(); err != nil {
				return walerr.New(walerr.Canceled, off, "salvage stopped; nothing is left under COPY's name")
			}
			s.p.set(off, s.size)
			if check == 0 && testPause == "salvage" {
				pauseHere(s.ctx, "salvage") // COPY's temporary file exists (a signal test stops here)
				if s.ctx.Err() != nil {
					continue
				}
			}
			check = off + 1<<20
		}
		n, why, err := s.record(off, layout, hs)
		if err != nil {
			return err
		}
		if n > 0 {
			if s.skip != nil {
				s.skip.To = off
				s.rep.Skipped = append(s.rep.Skipped, *s.skip)
				s.skip = nil
			}
			off += n
			continue
		}
		if s.skip == nil {
			s.skip = &salvageSkip{From: off, Reason: why}
		}
		off = s.next(off, hs)
	}
	if s.skip != nil {
		s.skip.To = s.size
		s.rep.Skipped = append(s.rep.Skipped, *s.skip)
	}
	return nil
}

// record copies the record at off to the output when it verifies and returns its size, or 0
// and why it does not.
func (s *salvager) record(off int64, layout format.Layout, hs int64) (int64, string, error) {
	if off+hs > s.size {
		return 0, "a record header cut off by the end of the file", nil
	}
	h, err := s.at(off, hs)
	if err != nil {
		return 0, "", err
	}
	var n, crc uint32
	if layout == format.LayoutV1 {
		v := format.DecodeV1Header(h)
		if !v.SelfCheckOK() {
			return 0, "a record header whose length fails its checksum", nil
		}
		n, crc = v.Length, v.PayloadCRC
	} else {
		l := format.DecodeLegacyHeader(h)
		n, crc = l.Length, l.PayloadCRC
	}
	switch {
	case n == 0:
		return 0, "a record of length 0", nil
	case int64(n) > s.max:
		return 0, fmt.Sprintf("a record length %d over --max-record", n), nil
	case off+hs+int64(n) > s.size:
		return 0, fmt.Sprintf("a record of %d bytes running past the end of the file", n), nil
	}
	h = bytes.Clone(h)
	if int64(n) <= salvageWindow/2 {
		p, err := s.at(off+hs, int64(n))
		if err != nil {
			return 0, "", err
		}
		if format.Checksum(p) != crc {
			return 0, "a record whose payload fails its checksum", nil
		}
		if _, err := format.CountOps(p); err != nil {
			return 0, "a record whose payload does not parse as ops", nil
		}
		if _, err := s.w.Write(h); err != nil {
			return 0, "", err
		}
		if _, err := s.w.Write(p); err != nil {
			return 0, "", err
		}
	} else if ok, err := s.big(off+hs, int64(n), crc, h); err != nil || !ok {
		return 0, "a record whose payload fails its checksum", err
	}
	s.rep.Records++
	s.rep.Bytes += hs + int64(n)
	return hs + int64(n), "", nil
}

// big checks a payload larger than half the window by streaming its checksum, then copies
// it (header first) when it matches.
func (s *salvager) big(off, n int64, crc uint32, h []byte) (bool, error) {
	buf := make([]byte, 1<<20)
	var c uint32
	for done := int64(0); done < n; {
		k := min(int64(len(buf)), n-done)
		if err := walerr.ReadFull(s.r, buf[:k], off+done); err != nil {
			return false, err
		}
		c = format.UpdateChecksum(c, buf[:k])
		done += k
	}
	if c != crc {
		return false, nil
	}
	if _, err := s.w.Write(h); err != nil {
		return false, err
	}
	for done := int64(0); done < n; {
		k := min(int64(len(buf)), n-done)
		if err := walerr.ReadFull(s.r, buf[:k], off+done); err != nil {
			return false, err
		}
		if _, err := s.w.Write(buf[:k]); err != nil {
			return false, err
		}
		done += k
	}
	return true, nil
}

// next is the next offset after off where a record could start. A header whose length is
// zero never holds a record, so in a run of zeros the scan moves to where the first non-zero
// byte could be in a header's length field.
func (s *salvager) next(off, hs int64) int64 {
	off++
	for off+4 <= s.size {
		b, err := s.at(off, min(s.size-off, salvageWindow/2))
		if err != nil || len(b) < 8 {
			return off
		}
		i := 0
		for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == 0 {
			i += 8
		}
		for i < len(b) && b[i] == 0 {
			i++
		}
		if i < 4 {
			return off
		}
		if i < len(b) {
			return off + int64(i) - 3
		}
		off += int64(i) - 3
	}
	return off
}

// at returns the file's bytes [off, off+n), n at most salvageWindow/2, from the window.
func (s *salvager) at(off, n int64) ([]byte, error) {
	if off >= s.winOff && off+n <= s.winOff+int64(len(s.win)) {
		return s.win[off-s.winOff : off-s.winOff+n], nil
	}
	if s.win == nil {
		s.win = make([]byte, salvageWindow)
	}
	k := min(int64(cap(s.win)), s.size-off)
	s.win = s.win[:k]
	if err := walerr.ReadFull(s.r, s.win, off); err != nil {
		s.win = s.win[:0]
		return nil, err
	}
	s.winOff = off
	return s.win[:n], nil
}

// Registered here rather than in main.go's table, so that this command is one file.
func init() { commands["salvage"] = command{cmdSalvage} }
