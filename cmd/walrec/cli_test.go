package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
)

// genCase is a log written by "walrec gen" and what recovery must say about it.
type genCase struct {
	layout, damage string
	// expected, default mode
	outcome string
	code    string // "null" for none
	exit    int
	tail    bool // a tail: strict mode refuses it, recover cuts it
}

func genCases() []genCase {
	var cs []genCase
	for _, layout := range []string{"v1", "legacy"} {
		torn := "torn_tail"
		if layout == "legacy" {
			torn = "damaged_tail" // no header checksum: a length past the end is damage, not a proven tear
		}
		cs = append(cs,
			genCase{layout, "none", "clean", "null", 0, false},
			genCase{layout, "torn_tail", torn, "null", 1, true},
			genCase{layout, "damaged_tail", "damaged_tail", "null", 1, true},
			genCase{layout, "corrupt", "corrupt", "CORRUPT_WAL", 2, false},
		)
	}
	return append(cs, genCase{"v1", "torn_header", "torn_header", "null", 1, true})
}

// gen writes a small log with walrec gen and returns its path, bytes and damage offset.
func gen(t *testing.T, dir string, c genCase, extra ...string) (string, []byte, int64) {
	t.Helper()
	path := filepath.Join(dir, c.layout+"-"+c.damage+".db")
	args := append([]string{"gen", path, "--size", "200KiB", "--record-size", "1000", "--keys", "64", "--ops", "3",
		"--layout", c.layout, "--damage", c.damage}, extra...)
	r := walrec(t, args...).mustExit(t, 0, "gen")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damageAt := int64(-1)
	for _, l := range lines(r.stdout) {
		fmt.Sscanf(l, "damage: "+c.damage+" at offset %d", &damageAt)
	}
	if c.damage != "none" && damageAt < 0 {
		t.Fatalf("gen did not say where the damage is:\n%s", r.stdout)
	}
	return path, data, damageAt
}

// TestEveryLayoutAndDamage runs verify, dump, bench and recover on generated logs of every
// layout and damage class, in every mode, and checks JSON, exit status and the file itself.
func TestEveryLayoutAndDamage(t *testing.T) {
	for _, c := range genCases() {
		t.Run(c.layout+"/"+c.damage, func(t *testing.T) {
			dir := t.TempDir()
			path, data, at := gen(t, dir, c)
			size := int64(len(data))

			// verify, in the default mode, sequential and parallel: the same report.
			var first jsonReport
			for _, par := range []string{"1", "2", "0"} {
				r := walrec(t, "verify", path, "--json", "--parallelism", par).mustExit(t, c.exit, "verify")
				j := decodeJSON(t, r.stdout)
				if j.str(t, "outcome") != c.outcome || j.str(t, "code") != c.code || j.num(t, "exit") != int64(c.exit) {
					t.Fatalf("verify: %v", j)
				}
				if j.str(t, "layout") != c.layout {
					t.Fatalf("verify: layout %v", j)
				}
				wantCut := int64(0)
				if c.tail {
					wantCut = size - at
				}
				if j.num(t, "truncate_bytes") != wantCut {
					t.Fatalf("verify: truncate_bytes %d, want %d", j.num(t, "truncate_bytes"), wantCut)
				}
				if c.damage != "none" && j.num(t, "offset") != at || c.damage == "none" && j.num(t, "offset") != -1 {
					t.Fatalf("verify: offset %d, want %d", j.num(t, "offset"), at)
				}
				if r.stderr != "" {
					t.Fatalf("verify --json: the report is on stdout; want nothing on stderr, got %q", r.stderr)
				}
				delete(j, "parallelism")
				delete(j, "peak_buffered")
				if first == nil {
					first = j
				} else if fmt.Sprint(first) != fmt.Sprint(j) {
					t.Fatalf("verify --parallelism %s differs:\n%v\n%v", par, j, first)
				}
			}

			// strict: a tail is a refusal, TAIL_DAMAGE, exit 2, and the outcome still names it.
			r := walrec(t, "verify", path, "--json", "--mode", "strict")
			j := decodeJSON(t, r.stdout)
			switch {
			case c.tail:
				r.mustExit(t, 2, "verify --mode strict")
				if j.str(t, "code") != "TAIL_DAMAGE" || j.str(t, "outcome") != c.outcome || j.num(t, "truncate_bytes") != 0 || j.num(t, "offset") != at {
					t.Fatalf("strict: %v", j)
				}
			default:
				r.mustExit(t, c.exit, "verify --mode strict")
			}

			// point-in-time: corruption is a cut too.
			r = walrec(t, "verify", path, "--json", "--mode", "point-in-time")
			j = decodeJSON(t, r.stdout)
			if c.damage == "corrupt" {
				r.mustExit(t, 1, "verify --mode point-in-time")
				if j.str(t, "outcome") != "corrupt" || j.str(t, "code") != "null" || j.num(t, "truncate_bytes") != size-at {
					t.Fatalf("point-in-time: %v", j)
				}
			} else {
				r.mustExit(t, c.exit, "verify --mode point-in-time")
			}

			// dump --json: one line per op of the records before the damage, then the report.
			r = walrec(t, "dump", path, "--json").mustExit(t, c.exit, "dump --json")
			ls := lines(r.stdout)
			if c.damage != "none" && c.exit != 0 {
				bad := decodeJSON(t, ls[len(ls)-2])
				if bad.str(t, "type") != "bad_record" || bad.num(t, "offset") != at {
					t.Fatalf("dump: bad record %v, want offset %d", bad, at)
				}
				ls = append(ls[:len(ls)-2], ls[len(ls)-1])
			}
			last := decodeJSON(t, ls[len(ls)-1])
			if last.str(t, "outcome") != c.outcome || last.num(t, "records")*3 != int64(len(ls)-1) {
				t.Fatalf("dump: %d op lines, report %v", len(ls)-1, last)
			}
			if len(ls) > 1 {
				op := decodeJSON(t, ls[0])
				if op.num(t, "record") != 0 || op.str(t, "op") != "set" || !strings.HasPrefix(op.str(t, "key_hex"), "6b6579") || op.str(t, "value_hex") == "null" {
					t.Fatalf("dump: first op %v", op)
				}
			}

			// bench: read-only, measures, and refuses what recovery refuses.
			benchExit := 0
			if c.exit == 2 {
				benchExit = 2
			}
			r = walrec(t, "bench", path, "--parallelism", "1,2", "--runs", "1", "--json").mustExit(t, benchExit, "bench")
			if ls := lines(r.stdout); benchExit == 0 && (len(ls) != 4 || decodeJSON(t, ls[3]).str(t, "outcome") != c.outcome) {
				t.Fatalf("bench: want 3 rows and the report:\n%s", r.stdout)
			}

			// None of that wrote a byte.
			assertFile(t, path, data)
			assertNoSidecar(t, dir)

			// recover: cuts tails (keeping the bytes), refuses corruption, leaves clean files be.
			r = walrec(t, "recover", path, "--json")
			j = decodeJSON(t, r.stdout)
			switch {
			case c.tail:
				r.mustExit(t, 0, "recover")
				sidecar := j.str(t, "sidecar")
				if j.str(t, "outcome") != c.outcome || j["truncated"] != true || sidecar != fmt.Sprintf("%s.cut-%d", path, at) {
					t.Fatalf("recover: %v", j)
				}
				assertFile(t, path, data[:at])
				assertFile(t, sidecar, data[at:])
				walrec(t, "verify", path).mustExit(t, 0, "verify after recover")
			case c.exit == 2:
				r.mustExit(t, 2, "recover")
				if j.str(t, "outcome") != c.outcome || j.str(t, "code") != c.code || j["truncated"] != false || j["sidecar"] != nil {
					t.Fatalf("recover: %v", j)
				}
				if j.num(t, "records") == 0 {
					t.Fatalf("recover: a refusal still reports what was replayed: %v", j)
				}
				assertFile(t, path, data)
				assertNoSidecar(t, dir)

				// point-in-time salvages it.
				r = walrec(t, "recover", path, "--json", "--mode", "point-in-time").mustExit(t, 0, "recover --mode point-in-time")
				j = decodeJSON(t, r.stdout)
				if j.str(t, "outcome") != "corrupt" || j["truncated"] != true {
					t.Fatalf("recover point-in-time: %v", j)
				}
				assertFile(t, path, data[:at])
				assertFile(t, j.str(t, "sidecar"), data[at:])
			default:
				r.mustExit(t, 0, "recover")
				if j.str(t, "outcome") != "clean" || j["truncated"] != false || j["sidecar"] != nil {
					t.Fatalf("recover: %v", j)
				}
				assertFile(t, path, data)
			}
		})
	}
}

// TestRecoverStrictTail: strict mode refuses a tail and leaves the file as it was.
func TestRecoverStrictTail(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	r := walrec(t, "recover", "--mode", "strict", path, "--json").mustExit(t, 2, "recover --mode strict")
	j := decodeJSON(t, r.stdout)
	if j.str(t, "code") != "TAIL_DAMAGE" || j.str(t, "outcome") != "torn_tail" || j.num(t, "offset") != at {
		t.Fatalf("%v", j)
	}
	assertFile(t, path, data)
	assertNoSidecar(t, dir)
	// And the human form says so.
	r = walrec(t, "recover", "--mode", "strict", path).mustExit(t, 2, "recover --mode strict")
	if !strings.Contains(r.stdout, "refused in strict mode (TAIL_DAMAGE)") || !strings.Contains(r.stderr, "TAIL_DAMAGE") {
		t.Fatalf("%+v", r)
	}
}

// TestRecoverHuman: the human report of a repair names the sidecar and says the file opens.
func TestRecoverHuman(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	path, data, at := gen(t, ".", genCase{layout: "v1", damage: "torn_tail"})
	r := walrec(t, "recover", path).mustExit(t, 0, "recover")
	want := fmt.Sprintf(`%[1]s: v1 log, %[2]d bytes, mode tolerate
  replayed  %[3]d records, %[4]d ops, %[7]d bytes (through offset %[5]d; largest payload 988 bytes)
  outcome   torn_tail at offset %[5]d: cut the last %[6]d bytes
  found     record runs past the end of the file
  sidecar   %[1]s.cut-%[5]d holds the cut bytes
  now       the file opens cleanly (%[5]d bytes)
  exit      0
`, path, len(data), (at-8)/1000, 3*(at-8)/1000, at, int64(len(data))-at, at-8)
	if r.stdout != want || r.stderr != "" {
		t.Fatalf("got:\n%s\nwant:\n%s\nstderr: %s", r.stdout, want, r.stderr)
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d (or different bytes)", path, len(got), len(want))
	}
}

func assertNoSidecar(t *testing.T, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.cut-*"))
	if len(m) > 0 {
		t.Fatalf("unexpected sidecar files: %v", m)
	}
}

// TestReadOnlyCommandsNeverWrite: verify, dump and bench leave a damaged file byte for byte
// and its modification time as they were, and take no lock (they work while a writer holds it).
func TestReadOnlyCommandsNeverWrite(t *testing.T) {
	dir := t.TempDir()
	path, data, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", path}, {"verify", path, "--json"}, {"verify", path, "--mode", "point-in-time"},
		{"dump", path}, {"dump", path, "--json"}, {"bench", path, "--runs", "1"},
	} {
		walrec(t, args...)
	}
	assertFile(t, path, data)
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old) {
		t.Fatalf("modification time changed: %v, was %v", fi.ModTime(), old)
	}
	assertNoSidecar(t, dir)

	// A clean database held open by a writer: verify reads it anyway; recover is LOCKED.
	clean := filepath.Join(dir, "held.db")
	d, err := db.Open(clean)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	r := walrec(t, "verify", clean, "--json").mustExit(t, 0, "verify of a locked database")
	if j := decodeJSON(t, r.stdout); j.num(t, "records") != 1 {
		t.Fatalf("%v", j)
	}
	r = walrec(t, "recover", clean, "--json").mustExit(t, 3, "recover of a locked database")
	j := decodeJSON(t, r.stdout)
	if j.str(t, "outcome") != "locked" || j.str(t, "code") != "LOCKED" {
		t.Fatalf("%v", j)
	}
	if r.stderr != "" {
		t.Fatalf("--json: stderr %q, want nothing", r.stderr)
	}
	if j.num(t, "size") == 0 || strings.Contains(j.str(t, "hint"), "db.") {
		t.Fatalf("a locked report carries the size and a walrec hint: %v", j)
	}
	r = walrec(t, "recover", clean).mustExit(t, 3, "recover of a locked database")
	if want := "walrec recover " + clean + ": the database is locked by another process (LOCKED)"; !strings.HasPrefix(r.stderr, want) || len(lines(r.stderr)) != 1 {
		t.Fatalf("stderr %q, want one line starting %q", r.stderr, want)
	}
	if !strings.Contains(r.stdout, "locked: another process has the database open (LOCKED)") {
		t.Fatalf("%s", r.stdout)
	}
}

// TestOpenErrors: missing files, directories and unreadable files are one clear line and exit 3.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	for _, cmd := range []string{"verify", "recover", "dump", "bench"} {
		r := walrec(t, cmd, missing).mustExit(t, 3, cmd+" of a missing file")
		if want := fmt.Sprintf("walrec %s %s: no such file or directory\n", cmd, missing); r.stderr != want {
			t.Fatalf("%s: stderr %q, want %q", cmd, r.stderr, want)
		}
		r = walrec(t, cmd, dir).mustExit(t, 3, cmd+" of a directory")
		if !strings.Contains(r.stderr, "is a directory") || len(lines(r.stderr)) != 1 {
			t.Fatalf("%s: stderr %q", cmd, r.stderr)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("recover created the missing file: %v", err)
	}
	r := walrec(t, "verify", missing, "--json").mustExit(t, 3, "verify --json of a missing file")
	if j := decodeJSON(t, r.stdout); j.str(t, "outcome") != "io_error" || j.num(t, "exit") != 3 {
		t.Fatalf("%v", j)
	}

	// Permission: real when not root (root reads anything), injected otherwise.
	if os.Geteuid() != 0 {
		noperm := filepath.Join(dir, "noperm.db")
		if err := os.WriteFile(noperm, format.FileHeader[:], 0o000); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"verify", "recover"} {
			r := walrec(t, cmd, noperm).mustExit(t, 3, cmd+" without permission")
			if !strings.Contains(r.stderr, "permission denied") || len(lines(r.stderr)) != 1 {
				t.Fatalf("%s: stderr %q", cmd, r.stderr)
			}
		}
	}
	withInput(t, func(path string) (inputFile, error) {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrPermission}
	})
	r = walrec(t, "verify", "secret.db").mustExit(t, 3, "verify without permission")
	if r.stderr != "walrec verify secret.db: permission denied\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// withInput replaces how the read-only commands open their file, for the test.
func withInput(t *testing.T, open func(string) (inputFile, error)) {
	old := openInput
	openInput = open
	t.Cleanup(func() { openInput = old })
}

// faulty is a testlog.Reader that can be closed.
type faulty struct{ *testlog.Reader }

func (faulty) Close() error { return nil }

// TestReadFaults: a short read and a failing read are I/O errors (exit 3), never a cut.
func TestReadFaults(t *testing.T) {
	l := testlog.RandomLog(1, format.LayoutV1, 200, 3, 500)
	for _, tc := range []struct {
		name    string
		r       *testlog.Reader
		outcome string
		code    string
	}{
		{"short read", &testlog.Reader{B: l.Bytes, ShortAt: 2}, "incomplete_read", "INCOMPLETE_READ"},
		{"read error", &testlog.Reader{B: l.Bytes, FailAt: 2}, "io_error", "IO_ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withInput(t, func(string) (inputFile, error) { tc.r.Calls.Store(0); return faulty{tc.r}, nil })
			for _, args := range [][]string{{"verify", "log.db", "--json", "--parallelism", "1"}, {"dump", "log.db", "--json"}} {
				r := walrec(t, args...).mustExit(t, 3, args[0])
				ls := lines(r.stdout)
				j := decodeJSON(t, ls[len(ls)-1])
				if j.str(t, "outcome") != tc.outcome || j.str(t, "code") != tc.code || j.num(t, "truncate_bytes") != 0 {
					t.Fatalf("%s: %v", args[0], j)
				}
				if r.stderr != "" {
					t.Fatalf("%s --json: stderr %q, want nothing", args[0], r.stderr)
				}
				r = walrec(t, args[0], "log.db").mustExit(t, 3, args[0])
				if len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, tc.code) {
					t.Fatalf("%s: stderr %q", args[0], r.stderr)
				}
			}
		})
	}
}

// TestUsage: --help for every command (stdout, exit 0, exit codes documented), and usage
// errors (one message on stderr, exit 3).
func TestUsage(t *testing.T) {
	r := walrec(t, "--help").mustExit(t, 0, "--help")
	for _, want := range []string{"walrec demo", "walrec verify FILE", exitCodesHelp, jsonHelp} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("--help lacks %q:\n%s", want, r.stdout)
		}
	}
	walrec(t).mustExit(t, 3, "no arguments")
	walrec(t, "help", "bogus").mustExit(t, 3, "help for an unknown command")
	for cmd := range commands {
		for _, h := range []string{"--help", "-h"} {
			r := walrec(t, cmd, h).mustExit(t, 0, cmd+" "+h)
			if !strings.Contains(r.stdout, "Usage: walrec "+cmd) || !strings.Contains(r.stdout, exitCodesHelp) || r.stderr != "" {
				t.Fatalf("%s %s:\n%s", cmd, h, r.stdout)
			}
			for name := range hiddenFlags {
				if strings.Contains(r.stdout, "-"+name+" ") || strings.Contains(r.stdout, "-"+name+"\n") {
					t.Fatalf("%s --help shows the hidden flag %s", cmd, name)
				}
			}
		}
		if r := walrec(t, "help", cmd).mustExit(t, 0, "help "+cmd); !strings.Contains(r.stdout, "Usage: walrec "+cmd) {
			t.Fatalf("help %s:\n%s", cmd, r.stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `walrec: unknown command "frobnicate"`},
		{[]string{"verify"}, "walrec verify: missing FILE argument"},
		{[]string{"recover", "a", "b"}, "walrec recover: too many arguments: a b"},
		{[]string{"verify", "a", "--nope"}, "walrec verify: flag provided but not defined: --nope"},
		{[]string{"verify", "a", "--mode", "yolo"}, `unknown mode "yolo"`},
		{[]string{"demo", "extra"}, `walrec demo: unexpected argument "extra"`},
		{[]string{"verify", "a", "--parallelism", "-1"}, "walrec verify: --parallelism -1 outside [0, 1024]"},
		{[]string{"recover", "a", "--max-record-size", "0"}, "walrec recover: --max-record-size 0 outside [1, 4294967294]"},
		{[]string{"dump", "a", "--max-record-size", "4GiB"}, "walrec dump: --max-record-size 4294967296 outside"},
		{[]string{"gen", "x.db", "--size", "lots"}, `bad size "lots"`},
		{[]string{"gen", "x.db", "--layout", "v2"}, `unknown layout "v2"`},
		{[]string{"gen", "x.db", "--record-size", "10"}, "too small"},
		{[]string{"gen", "x.db", "--layout", "legacy", "--damage", "torn_header"}, "needs --layout v1"},
		{[]string{"bench", "x.db", "--parallelism", "1,two"}, "bad --parallelism"},
	} {
		r := walrec(t, tc.args...).mustExit(t, 3, strings.Join(tc.args, " "))
		if !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Fatalf("%v: stderr %q, want %q; stdout %q", tc.args, r.stderr, tc.want, r.stdout)
		}
	}
	// Flags may come before or after FILE; "--" ends them.
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	a := walrec(t, "verify", "--json", path).mustExit(t, 0, "flags first")
	b := walrec(t, "verify", path, "--json").mustExit(t, 0, "flags last")
	if a != b {
		t.Fatalf("%+v\n%+v", a, b)
	}
	t.Chdir(dir)
	dash := "-odd.db"
	if err := os.Rename(path, dash); err != nil {
		t.Fatal(err)
	}
	walrec(t, "verify", "--json", "--", dash).mustExit(t, 0, "-- FILE")
}

// TestGen: gen writes exactly what it says, the same bytes for the same flags, and never
// overwrites a file unless asked to.
func TestGen(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		r := walrec(t, "gen", a, "--size", "64KiB", "--record-size", "4KiB", "--keys", "16", "--layout", layout.String(), "--force").mustExit(t, 0, "gen")
		walrec(t, "gen", b, "--size", "64KiB", "--record-size", "4KiB", "--keys", "16", "--layout", layout.String(), "--force").mustExit(t, 0, "gen")
		da, _ := os.ReadFile(a)
		dbb, _ := os.ReadFile(b)
		if !bytes.Equal(da, dbb) {
			t.Fatal("the same flags wrote different bytes")
		}
		n := (64<<10 - layout.FirstRecord()) / (4 << 10)
		if want := layout.FirstRecord() + n*(4<<10); int64(len(da)) != want {
			t.Fatalf("%s: %d bytes, want %d", layout, len(da), want)
		}
		if want := fmt.Sprintf("wrote %s: %s log, %d records, %d ops, %d bytes\n", a, layout, n, n, len(da)); r.stdout != want {
			t.Fatalf("stdout %q, want %q", r.stdout, want)
		}
		// Every record is exactly 4 KiB and recovery replays them all.
		res, err := recovery.Recover(t.Context(), bytes.NewReader(da), nil)
		if err != nil || res.Records != n || res.LargestRecord != 4<<10-int64(layout.HeaderSize()) || res.Truncation != nil {
			t.Fatalf("%s: %+v %v", layout, res, err)
		}
	}
	walrec(t, "gen", a, "--seed", "2", "--force", "--size", "1MiB").mustExit(t, 0, "gen --seed 2")
	r := walrec(t, "gen", a).mustExit(t, 3, "gen over an existing file")
	if !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if fi, _ := os.Stat(a); fi.Size() != 1<<20-(1<<20-8)%(4<<10) {
		t.Fatalf("the existing file was touched: %d bytes", fi.Size())
	}
}

// TestProgressBar: on a terminal, long work draws a bar on stderr; stdout stays the same.
func TestProgressBar(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.db")
	walrec(t, "gen", path, "--size", "8MiB", "--record-size", "512").mustExit(t, 0, "gen")
	plain := walrec(t, "verify", path, "--json", "--parallelism", "1")
	if plain.stderr != "" {
		t.Fatalf("no terminal, yet stderr %q", plain.stderr)
	}

	oldTerm, oldDelay := isTerminal, progressDelay
	isTerminal, progressDelay = func(io.Writer) bool { return true }, 0
	t.Cleanup(func() { isTerminal, progressDelay = oldTerm, oldDelay })
	bar := walrec(t, "verify", path, "--json", "--parallelism", "1")
	if bar.code != plain.code || bar.stdout != plain.stdout {
		t.Fatalf("stdout changed with a bar:\n%s\n%s", bar.stdout, plain.stdout)
	}
	if !strings.Contains(bar.stderr, "verify") || !strings.Contains(bar.stderr, "%") || !strings.Contains(bar.stderr, "MiB") {
		t.Fatalf("no progress bar on stderr: %q", bar.stderr)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "4KiB": 4096, "4k": 4096, "4KB": 4000, "64MiB": 64 << 20, "64M": 64 << 20,
		"1GiB": 1 << 30, "100MB": 100e6, "0": 0, " 2 MiB ": 2 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "4 parsecs", "99999999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}
