package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"github.com/streamwal/recovery/format"
)

const genUsage = `Usage: walrec gen FILE [--size 64MiB] [--record-size 4KiB] [--keys 1024] [--ops 1]
                  [--layout v1|legacy] [--seed 1] [--damage none|torn_tail|damaged_tail|corrupt|torn_header]
                  [--force]

Writes a log for benchmarks and tests: records of exactly --record-size bytes on disk (header
included) until the next one would pass --size, each one transaction of --ops sets of
random, incompressible values to keys "key00000000".. over --keys keys. The same flags and
--seed always write the same bytes. FILE must not exist unless --force.

--damage writes the file as a crash or a fault would leave it:
  torn_tail     one more record, cut half way through its payload (a crash mid-append;
                in a legacy file, which has no header checksum, recovery calls it damaged_tail)
  damaged_tail  the last record's bytes are zeros (a crash that kept the size, not the data)
  corrupt       a payload byte of the middle record is flipped (acknowledged records follow)
  torn_header   only the first 5 bytes of the v1 file header (v1 only; no records)

Exit status: 0 written, 3 an I/O or usage error.
`

type genSpec struct {
	size, recordSize int64
	keys, ops        int
	layout           format.Layout
	seed             uint64
	damage           string
}

// genResult says what gen wrote.
type genResult struct {
	Records, Ops int64 // intact records (the damaged one not counted) and their ops
	Bytes        int64
	DamageAt     int64 // offset of the damage, -1 for none
}

func cmdGen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("gen")
	spec := genSpec{}
	size, recSize := sizeFlag(64<<20), sizeFlag(4<<10)
	fs.Var(&size, "size", "file `size` to fill (records stop before passing it)")
	fs.Var(&recSize, "record-size", "`size` of each record on disk, header included")
	fs.IntVar(&spec.keys, "keys", 1024, "number of distinct keys")
	fs.IntVar(&spec.ops, "ops", 1, "sets per record (transaction)")
	layout := fs.String("layout", "v1", "record layout: v1 or legacy")
	fs.Uint64Var(&spec.seed, "seed", 1, "random seed")
	fs.StringVar(&spec.damage, "damage", "none", "none, torn_tail, damaged_tail, corrupt or torn_header")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	pos, code, ok := parseFlags(fs, genUsage, args, 1, stdout, stderr)
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
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, os.ErrExist) {
		fmt.Fprintf(stderr, "walrec gen: %s already exists; gen never overwrites a file unless --force\n", path)
		return exitError
	}
	if err != nil {
		fmt.Fprintf(stderr, "walrec gen: %v\n", err)
		return exitError
	}
	p := newProgress(stderr, "gen")
	res, err := spec.write(ctx, f, p)
	p.done()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // a partial log is worse than none
		fmt.Fprintf(stderr, "walrec gen: %s: %v (the partial file was removed)\n", path, err)
		return exitError
	}
	fmt.Fprintf(stdout, "wrote %s: %s log, %d records, %d ops, %d bytes\n", path, spec.layout, res.Records, res.Ops, res.Bytes)
	if res.DamageAt >= 0 {
		fmt.Fprintf(stdout, "damage: %s at offset %d\n", spec.damage, res.DamageAt)
	}
	return exitOK
}

const genKeyLen = 11 // "key%08d"

func (s *genSpec) check() error {
	hdr := int64(s.layout.HeaderSize())
	minRec := hdr + int64(s.ops)*(1+4+genKeyLen+4)
	switch {
	case s.keys < 1 || s.keys > 100_000_000:
		return fmt.Errorf("--keys %d outside [1, 100000000]", s.keys)
	case s.ops < 1:
		return fmt.Errorf("--ops %d < 1", s.ops)
	case s.recordSize < minRec:
		return fmt.Errorf("--record-size %d is too small for %d ops: at least %d bytes", s.recordSize, s.ops, minRec)
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
	return (s.size - s.layout.FirstRecord()) / s.recordSize
}

// write writes the log to w.
func (s *genSpec) write(ctx context.Context, w io.Writer, p *progress) (genResult, error) {
	res := genResult{DamageAt: -1}
	bw := bufio.NewWriterSize(w, 1<<20)
	put := func(b []byte) {
		bw.Write(b)
		res.Bytes += int64(len(b))
	}
	if s.damage == "torn_header" {
		put(format.FileHeader[:5])
		res.DamageAt = 0
		return res, bw.Flush()
	}
	if s.layout == format.LayoutV1 {
		put(format.FileHeader[:])
	}
	rng := rand.New(rand.NewPCG(s.seed, 0x9e3779b97f4a7c15))
	n := s.records()
	payloadLen := int(s.recordSize) - s.layout.HeaderSize()
	payload := make([]byte, 0, payloadLen)
	rec := make([]byte, 0, s.recordSize)
	value := make([]byte, payloadLen)
	next := func() []byte {
		payload = payload[:0]
		room := payloadLen - s.ops*(1+4+genKeyLen+4) // value bytes, shared out among the ops
		for i := range s.ops {
			vl := room / s.ops
			if i == 0 {
				vl += room % s.ops
			}
			for j := 0; j < vl; j += 8 {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], rng.Uint64())
				copy(value[j:vl], b[:])
			}
			key := fmt.Appendf(nil, "key%08d", rng.IntN(s.keys))
			payload = format.AppendSet(payload, key, value[:vl])
		}
		return format.AppendRecord(rec[:0], s.layout, payload)
	}
	for i := range n {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			p.set(res.Bytes, s.size)
		}
		r := next()
		switch {
		case s.damage == "damaged_tail" && i == n-1:
			res.DamageAt = res.Bytes
			clear(r)
		case s.damage == "corrupt" && i == n/2:
			res.DamageAt = res.Bytes
			r[len(r)-1-payloadLen/2] ^= 0x40 // a payload byte
		default:
			res.Records++
			res.Ops += int64(s.ops)
		}
		put(r)
	}
	if s.damage == "torn_tail" {
		r := next()
		res.DamageAt = res.Bytes
		put(r[:s.layout.HeaderSize()+payloadLen/2])
	}
	return res, bw.Flush()
}
