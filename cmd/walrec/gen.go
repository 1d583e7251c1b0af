package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

const genUsage = `Usage: walrec gen FILE [--size 64MiB] [--record-size 4KiB] [--keys 1024] [--ops 1]
                  [--layout v1|legacy] [--seed 1] [--damage none|torn_tail|damaged_tail|corrupt|torn_header]
                  [--force] [--json] [--quiet] [--progress MODE]

Writes a log for benchmarks and tests: records of exactly --record-size bytes on disk (header
included) until the next one would pass --size, each one transaction of --ops sets of
random, incompressible values to keys "key00000000".. over --keys keys. The same flags and
--seed always write the same bytes. Records of any size are streamed: gen holds about 2 MiB
whatever --record-size is.

FILE must not exist unless --force, and must be a regular file if it does: gen never writes
to, replaces or removes a directory, FIFO, socket or device (a symbolic link is followed to
the file it names, and the link stays). With --force an existing file is replaced only once
the new one is complete (it is written beside it as FILE.replace and renamed over it); until
then the old one is untouched. The new file keeps the old one's mode, owner and group (gen
refuses, before writing, where it cannot), and gen holds the database's lock throughout: a
file that a process has open as a database is never replaced (LOCKED).
Before writing, gen checks that the filesystem has room for the whole file. If it fails or is
stopped (Ctrl-C, SIGTERM, SIGHUP, SIGPIPE) while writing, it removes the file it was writing,
and nothing else. Once the file is complete (synced, under its name) it stays: a report that
cannot be written after that (stdout full: exit 3; its reader gone: 141) says on stderr that
the file was written.

It reports the records the file holds (a corrupt one included: it is whole), their ops and
bytes, and the damage and its offset; with --json, one "report" line: file, layout, records,
ops, bytes, damage, damage_offset, and the outcome "written" (or why not).

--damage writes the file as a crash or a fault would leave it:
  torn_tail     one more record, cut half way through its payload (a crash mid-append;
                in a legacy file, which has no header checksum, recovery calls it damaged_tail)
  damaged_tail  the last record's bytes are zeros (a crash that kept the size, not the data)
  corrupt       a payload byte of the middle record is flipped (acknowledged records follow)
  torn_header   only the first 5 bytes of the v1 file header (v1 only; no records)

Here: 0 written, 3 an I/O or usage error (or no room for the file, or LOCKED).

` + exitCodesHelp

type genSpec struct {
	size, recordSize int64
	keys, ops        int
	layout           format.Layout
	seed             uint64
	damage           string
}

// genResult says what gen wrote.
type genResult struct {
	Records, Ops int64 // the whole records in the file (a corrupt one included) and their ops
	Bytes        int64
	DamageAt     int64 // offset of the damage, -1 for none
}

// genReport is gen's report.
type genReport struct {
	jsonHead
	File         string  `json:"file"`
	FileHex      *string `json:"file_hex"`
	Layout       string  `json:"layout"`
	Records      *int64  `json:"records"` // null unless written
	Ops          *int64  `json:"ops"`
	Bytes        *int64  `json:"bytes"`
	Damage       *string `json:"damage"` // null for none
	DamageOffset *int64  `json:"damage_offset"`
	outcome
}

func cmdGen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := newFlags("gen")
	spec := genSpec{}
	size, recSize := sizeFlag(64<<20), sizeFlag(4<<10)
	flags.Var(&size, "size", "file `size` to fill (records stop before passing it)")
	flags.Var(&recSize, "record-size", "`size` of each record on disk, header included")
	flags.IntVar(&spec.keys, "keys", 1024, "number of distinct keys")
	flags.IntVar(&spec.ops, "ops", 1, "sets per record (transaction)")
	layout := flags.String("layout", "v1", "record layout: v1 or legacy")
	flags.Uint64Var(&spec.seed, "seed", 1, "random seed")
	asJSON := flags.Bool("json", false, "print the report as a JSON line")
	flags.StringVar(&spec.damage, "damage", "none", "none, torn_tail, damaged_tail, corrupt or torn_header")
	force := flags.Bool("force", false, "replace FILE if it exists (a regular file only)")
	var of outFlags
	of.register(flags)
	pos, code, ok := parseFlags(ctx, flags, genUsage, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	spec.size, spec.recordSize = int64(size), int64(recSize)
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "walrec gen: %s\nrun \"walrec gen --help\" for usage\n", fmt.Sprintf(format, a...))
		return exitError
	}
	switch *layout {
	case "v1":
		spec.layout = format.LayoutV1
	case "legacy":
		spec.layout = format.LayoutLegacy
	default:
		return usage("unknown layout %q (want v1 or legacy)", *layout)
	}
	if err := spec.check(); err != nil {
		return usage("%v", err)
	}
	path := pos[0]
	rep := genReport{jsonHead: head("gen", "report"), File: path, FileHex: nameHex(&path), Layout: spec.layout.String()}
	if spec.damage != "none" {
		rep.Damage = ptr(spec.damage)
	}
	out := func(human func(io.Writer), done string) int {
		return reportOut(ctx, stdout, stderr, "gen", path, &rep.outcome, *asJSON, of.quiet, &rep, human, done)
	}
	fail := func(format string, a ...any) int {
		rep.fail(ctx, fmt.Errorf(format, a...), genHints)
		return out(nil, "")
	}

	// What is there now? Only a regular file may be replaced, and only with --force.
	target := path
	replace := false
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return fail("is %s, not a regular file; gen writes only regular files and leaves this one alone", kindOf(fi))
	case err == nil && !*force:
		return fail("already exists; gen never replaces a file unless --force")
	case err == nil:
		target, replace = resolve(path), true // only for the free-space check: db.Replace resolves it itself
	case errors.Is(err, fs.ErrNotExist):
		if lfi, lerr := os.Lstat(path); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			return fail("is a symbolic link to a missing file; give the path of the file itself")
		}
	default:
		return fail("%v", errText(err))
	}
	dir := filepath.Dir(target)
	if err := needSpace(dir, spec.fileSize(), "the file"); err != nil {
		return fail("%v; nothing was written", err)
	}

	p := of.progress(stderr, "gen", path)
	var res genResult
	if replace {
		err = replaceFile(ctx, path, &spec, p, &res)
	} else {
		err = createFile(ctx, target, &spec, p, &res)
	}
	p.done()
	if err != nil {
		rep.fail(ctx, err, genHints)
		return out(nil, "")
	}
	rep.Records, rep.Ops, rep.Bytes = ptr(res.Records), ptr(res.Ops), ptr(res.Bytes)
	if res.DamageAt >= 0 {
		rep.DamageOffset = ptr(res.DamageAt)
	}
	rep.succeed("written", exitOK)
	return out(func(w io.Writer) {
		fmt.Fprintf(w, "wrote %s: %s log, %d records, %d ops, %d bytes\n", quoteName(path), spec.layout, res.Records, res.Ops, res.Bytes)
		if res.DamageAt >= 0 {
			fmt.Fprintf(w, "damage: %s at offset %d (%s)\n", spec.damage, res.DamageAt, damageWords[spec.damage])
		}
		if rep.Signal != nil {
			fmt.Fprintf(w, "%s came once the file was complete: it is kept (exit %d)\n", *rep.Signal, rep.Exit)
		}
	}, fmt.Sprintf("wrote %s, complete (%d bytes; it is kept)", quoteName(path), res.Bytes))
}

// createFile writes the log to path, which must not exist, under its own name (O_EXCL), and
// removes it on any failure.
func createFile(ctx context.Context, path string, spec *genSpec, p *progress, res *genResult) error {
	f, own, err := createOwn(path, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return errors.New("already exists; gen never replaces a file unless --force")
	}
	if err != nil {
		return errors.New(errText(err))
	}
	*res, err = spec.write(ctx, f, p)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err == nil {
		return nil
	}
	what := "the partial file was removed"
	if rerr := own.remove(); rerr != nil {
		what = "the partial file could not be removed: " + rerr.Error()
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return walerr.New(walerr.Canceled, -1, fmt.Sprintf("stopped before the end (%s)", what))
	}
	return fmt.Errorf("%v (%s)", errText(err), what)
}

// replaceFile writes the log in place of the existing file at path through db.Replace: under
// the database's lock (LOCKED while a process has it open), beside the file a link names,
// with the old file's mode, owner and group, renamed over it only once complete.
func replaceFile(ctx context.Context, path string, spec *genSpec, p *progress, res *genResult) error {
	err := db.Replace(ctx, path, func(ctx context.Context, f db.File) error {
		var err error
		*res, err = spec.write(ctx, appendWriter{f}, p)
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrLocked):
		return err
	case errors.Is(err, db.ErrIdentity):
		return err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return walerr.New(walerr.Canceled, -1, fmt.Sprintf("stopped before the end (the partial file was removed; %s is as it was)", quoteName(path)))
	}
	return fmt.Errorf("%v (the partial file was removed; %s is as it was)", errText(err), quoteName(path))
}

// appendWriter writes through db.File's Append.
type appendWriter struct{ f db.File }

func (w appendWriter) Write(p []byte) (int, error) {
	if err := w.f.Append(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// genHints are gen's words for what to do, by code.
var genHints = map[walerr.Code]string{
	walerr.Locked: "a process has it open as a database, and gen never replaces a database in use: close it first; nothing was written",
}

// damageWords say what each --damage did.
var damageWords = map[string]string{
	"torn_tail":    "one more record, cut half way through its payload",
	"damaged_tail": "the last record's bytes are zeros; it is not counted",
	"corrupt":      "a payload byte of this record, counted above, is flipped: recovery refuses the file",
	"torn_header":  "only the first 5 bytes of the file header",
}

const genKeyLen = 11 // "key%08d"

// opOverhead is the bytes of one set op besides its value: tag, key length, key, value length.
const opOverhead = 1 + 4 + genKeyLen + 4

func (s *genSpec) check() error {
	hdr := int64(s.layout.HeaderSize())
	switch {
	case s.keys < 1 || s.keys > 100_000_000:
		return fmt.Errorf("--keys %d outside [1, 100000000]", s.keys)
	case s.ops < 1 || s.ops > 1<<20:
		return fmt.Errorf("--ops %d outside [1, 1048576]", s.ops)
	case s.recordSize < hdr+int64(s.ops)*opOverhead:
		return fmt.Errorf("--record-size %d is too small for %d ops: at least %d bytes", s.recordSize, s.ops, hdr+int64(s.ops)*opOverhead)
	case s.recordSize-hdr > 0xFFFFFFFE:
		return fmt.Errorf("--record-size %d is larger than any record can be", s.recordSize)
	}
	switch s.damage {
	case "none", "torn_tail", "damaged_tail", "corrupt":
	case "torn_header":
		if s.layout != format.LayoutV1 {
			return fmt.Errorf("--damage torn_header needs --layout v1 (a legacy file has no header)")
		}
	default:
		return fmt.Errorf("unknown --damage %q", s.damage)
	}
	if s.damage != "torn_header" && s.records() < 1 || s.damage == "corrupt" && s.records() < 3 {
		return fmt.Errorf("--size %d holds too few %d-byte records for --damage %s", s.size, s.recordSize, s.damage)
	}
	return nil
}

// records is how many whole records fit in size.
func (s *genSpec) records() int64 {
	return max(0, s.size-s.layout.FirstRecord()) / s.recordSize
}

// fileSize is the size of the file write makes.
func (s *genSpec) fileSize() int64 {
	if s.damage == "torn_header" {
		return 5
	}
	n := s.layout.FirstRecord() + s.records()*s.recordSize
	if s.damage == "torn_tail" {
		n += int64(s.layout.HeaderSize()) + (s.recordSize-int64(s.layout.HeaderSize()))/2
	}
	return n
}

// genChunk is the most payload gen holds at once: a record larger than this is generated
// twice from the same random state, once for its checksum and once to write it.
const genChunk = 1 << 20

// genWriter writes the log through a buffer, checking for cancellation every MiB.
type genWriter struct {
	ctx    context.Context
	bw     *bufio.Writer
	p      *progress
	n      int64
	total  int64
	check  int64 // next offset at which to look at ctx
	paused bool
}

func (w *genWriter) write(b []byte) error {
	if w.n >= w.check {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		w.p.set(w.n, w.total)
		w.check = w.n + genChunk
		if w.n > 0 && !w.paused && testPause == "gen" {
			w.paused = true
			if err := w.bw.Flush(); err != nil {
				return err
			}
			pauseHere(w.ctx, "gen")
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
	}
	_, err := w.bw.Write(b)
	w.n += int64(len(b))
	return err
}

// payloadGen makes record payloads in chunks of at most genChunk bytes.
type payloadGen struct {
	s       *genSpec
	pcg     *rand.PCG
	rng     *rand.Rand
	buf     []byte
	scratch [4096]byte
}

// run makes the next payload and passes it to emit in order, chunk by chunk. The chunk is
// reused after emit returns.
func (g *payloadGen) run(emit func([]byte) error) error {
	s := g.s
	g.buf = g.buf[:0]
	put := func(b []byte) error {
		for len(b) > 0 {
			n := copy(g.buf[len(g.buf):cap(g.buf)], b)
			g.buf, b = g.buf[:len(g.buf)+n], b[n:]
			if len(g.buf) == cap(g.buf) {
				if err := emit(g.buf); err != nil {
					return err
				}
				g.buf = g.buf[:0]
			}
		}
		return nil
	}
	payloadLen := int(s.recordSize) - s.layout.HeaderSize()
	room := payloadLen - s.ops*opOverhead // value bytes, shared out among the ops
	for i := range s.ops {
		vl := room / s.ops
		if i == 0 {
			vl += room % s.ops
		}
		var head [1 + 4 + genKeyLen + 4]byte
		head[0] = byte(format.OpSet)
		binary.BigEndian.PutUint32(head[1:], genKeyLen)
		_ = fmt.Appendf(head[5:5], "key%08d", g.rng.IntN(s.keys)) // in place: head has room
		binary.BigEndian.PutUint32(head[5+genKeyLen:], uint32(vl))
		if err := put(head[:]); err != nil {
			return err
		}
		for j := 0; j < vl; {
			n := min(len(g.scratch), vl-j)
			for k := 0; k < n; k += 8 {
				var w [8]byte
				binary.LittleEndian.PutUint64(w[:], g.rng.Uint64())
				copy(g.scratch[k:n], w[:])
			}
			if err := put(g.scratch[:n]); err != nil {
				return err
			}
			j += n
		}
	}
	if len(g.buf) > 0 {
		return emit(g.buf)
	}
	return nil
}

var errEnough = errors.New("enough")

// record writes the next record: whole, with one payload byte flipped (corrupt), or only its
// header and the first half of its payload (torn).
func (g *payloadGen) record(w *genWriter, flip, torn bool) error {
	s := g.s
	payloadLen := int64(s.recordSize) - int64(s.layout.HeaderSize())
	// The checksum first: from the same random state the payload is then written from.
	saved := *g.pcg
	crc := uint32(0)
	err := g.run(func(b []byte) error {
		crc = format.UpdateChecksum(crc, b)
		return w.ctx.Err()
	})
	if err != nil {
		return err
	}
	hdr := make([]byte, s.layout.HeaderSize())
	format.PutHeader(hdr, s.layout, uint32(payloadLen), crc)
	if err := w.write(hdr); err != nil {
		return err
	}
	limit := payloadLen
	if torn {
		limit = payloadLen / 2
	}
	flipAt := int64(-1)
	if flip {
		flipAt = payloadLen - 1 - payloadLen/2
	}
	*g.pcg = saved
	var pos int64
	err = g.run(func(b []byte) error {
		if flipAt >= pos && flipAt < pos+int64(len(b)) {
			b[flipAt-pos] ^= 0x40
		}
		if pos+int64(len(b)) > limit {
			b = b[:limit-pos]
		}
		pos += int64(len(b))
		if err := w.write(b); err != nil {
			return err
		}
		if pos >= limit {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return err
}

// write writes the log to out.
func (s *genSpec) write(ctx context.Context, out io.Writer, p *progress) (genResult, error) {
	res := genResult{DamageAt: -1}
	w := &genWriter{ctx: ctx, bw: bufio.NewWriterSize(out, genChunk), p: p, total: s.fileSize()}
	if s.damage == "torn_header" {
		res.DamageAt = 0
		err := w.write(format.FileHeader[:5])
		if err == nil {
			err = w.bw.Flush()
		}
		res.Bytes = w.n
		return res, err
	}
	if s.layout == format.LayoutV1 {
		if err := w.write(format.FileHeader[:]); err != nil {
			return res, err
		}
	}
	pcg := rand.NewPCG(s.seed, 0x9e3779b97f4a7c15)
	g := &payloadGen{s: s, pcg: pcg, rng: rand.New(pcg), buf: make([]byte, 0, min(genChunk, s.recordSize))}
	n := s.records()
	var zeros []byte
	for i := range n {
		var err error
		switch {
		case s.damage == "damaged_tail" && i == n-1:
			res.DamageAt = w.n
			if zeros == nil {
				zeros = make([]byte, min(genChunk, s.recordSize))
			}
			for left := s.recordSize; left > 0 && err == nil; left -= int64(len(zeros)) {
				err = w.write(zeros[:min(left, int64(len(zeros)))])
			}
		case s.damage == "corrupt" && i == n/2:
			res.DamageAt = w.n
			res.Records++ // whole, one byte flipped: the file holds it
			res.Ops += int64(s.ops)
			err = g.record(w, true, false)
		default:
			res.Records++
			res.Ops += int64(s.ops)
			err = g.record(w, false, false)
		}
		if err != nil {
			return res, err
		}
	}
	if s.damage == "torn_tail" {
		res.DamageAt = w.n
		if err := g.record(w, false, true); err != nil {
			return res, err
		}
	}
	res.Bytes = w.n
	return res, w.bw.Flush()
}
