package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/format"
)

// Every command's recovery and the demo's heap sampler start goroutines: none may outlive them.
//
// With WALREC_TEST_MAIN=1 the test binary is walrec itself (the signal tests run it as a
// child process): WALREC_TEST_PAUSE names a point where the command announces itself on
// stderr ("walrec-test: paused at POINT") and waits for its context to end, or, with
// WALREC_TEST_RESUME=stdin, for its stdin to close.
func TestMain(m *testing.M) {
	if os.Getenv("WALREC_TEST_MAIN") == "1" {
		testPause = os.Getenv("WALREC_TEST_PAUSE")
		testPaused = func(ctx context.Context, point string) {
			fmt.Fprintf(os.Stderr, "walrec-test: paused at %s\n", point)
			if os.Getenv("WALREC_TEST_RESUME") == "stdin" {
				io.Copy(io.Discard, os.Stdin)
				return
			}
			<-ctx.Done()
		}
		os.Exit(mainProcess(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// result is one run of the CLI.
type result struct {
	stdout, stderr string
	code           int
}

// walrec runs the CLI in-process.
func walrec(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// mustExit fails unless the run exited with code.
func (r result) mustExit(t *testing.T, code int, what string) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// jsonReport is --json's object, decoded loosely so that null stays distinguishable.
type jsonReport map[string]any

func decodeJSON(t *testing.T, s string) jsonReport {
	t.Helper()
	var r jsonReport
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, s)
	}
	return r
}

// num returns a numeric field, or -1 for null; it fails on a missing field.
func (r jsonReport) num(t *testing.T, k string) int64 {
	t.Helper()
	v, ok := r[k]
	if !ok {
		t.Fatalf("JSON has no %q: %v", k, r)
	}
	if v == nil {
		return -1
	}
	return int64(v.(float64))
}

// str returns a string field, or "null" for null; it fails on a missing field.
func (r jsonReport) str(t *testing.T, k string) string {
	t.Helper()
	v, ok := r[k]
	if !ok {
		t.Fatalf("JSON has no %q: %v", k, r)
	}
	if v == nil {
		return "null"
	}
	return v.(string)
}

// jsonLines decodes every line of s (JSON Lines), checking the convention on each: version 1,
// the command, and a type.
func jsonLines(t *testing.T, cmd, s string) []jsonReport {
	t.Helper()
	var out []jsonReport
	for _, l := range lines(s) {
		j := decodeJSON(t, l)
		if j.num(t, "version") != 1 || j.str(t, "command") != cmd || j.str(t, "type") == "null" {
			t.Fatalf("a line that is not walrec's JSON of %s: %s", cmd, l)
		}
		out = append(out, j)
	}
	return out
}

// ofType is the lines of type typ.
func ofType(t *testing.T, ls []jsonReport, typ string) []jsonReport {
	t.Helper()
	var out []jsonReport
	for _, l := range ls {
		if l.str(t, "type") == typ {
			out = append(out, l)
		}
	}
	return out
}

// ---- small hand-made logs, for the golden files ----

// fixturePayloads are seven transactions with printable, binary, empty, long and non-ASCII
// keys and values, sets and deletes.
func fixturePayloads() [][]byte {
	set := format.AppendSet
	del := format.AppendDelete
	return [][]byte{
		set(set(nil, []byte("user:1"), []byte(`{"name":"ada"}`)), []byte("user:2"), []byte("bob")),
		del(nil, []byte("user:2")),
		set(nil, []byte{0x00, 0xff, 0x10}, []byte{0xde, 0xad, 0xbe, 0xef}),
		set(set(nil, []byte("empty"), nil), nil, []byte("empty key")),
		set(nil, []byte("long"), bytes.Repeat([]byte("x"), 100)),
		set(nil, []byte("unicode:é"), []byte("naïve ☃")),
		del(set(nil, []byte("user:3"), []byte("carol")), []byte("session:9")),
	}
}

// fixture is a hand-made log and the offsets of its records.
type fixture struct {
	data    []byte
	offsets []int64
}

func buildFixture(layout format.Layout) fixture {
	var f fixture
	if layout == format.LayoutV1 {
		f.data = append(f.data, format.FileHeader[:]...)
	}
	for _, p := range fixturePayloads() {
		f.offsets = append(f.offsets, int64(len(f.data)))
		f.data = format.AppendRecord(f.data, layout, p)
	}
	return f
}

// goldenCase is one file for the golden tests: its name, bytes and extra flags.
type goldenCase struct {
	name  string
	data  []byte
	flags []string
}

// goldenCases covers every layout and every damage class.
func goldenCases() []goldenCase {
	var cs []goldenCase
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		f := buildFixture(layout)
		last := f.offsets[len(f.offsets)-1]
		hdr := layout.HeaderSize()
		add := func(name string, data []byte, flags ...string) {
			cs = append(cs, goldenCase{name + "." + layout.String(), data, flags})
		}
		clone := func() []byte { return bytes.Clone(f.data) }

		add("clean", clone())
		// A crash mid-append: the header and part of the payload of one more record.
		next := format.AppendRecord(nil, layout, format.AppendSet(nil, []byte("user:4"), []byte("dave")))
		add("torn_tail", append(clone(), next[:hdr+5]...))
		// Fewer bytes than a record header after the last record.
		add("torn_tail_short", append(clone(), next[:5]...))
		// The last record's bytes are zeros (the size reached the disk, the data did not).
		d := clone()
		clear(d[last:])
		add("damaged_tail", d)
		// A flipped payload byte in the third record: four good records follow it.
		d = clone()
		d[f.offsets[2]+int64(hdr)+6] ^= 0x40
		add("corrupt", d)
		add("corrupt_pit", d, "--mode", "point-in-time")
		// A record whose checksum holds but whose payload does not parse: written whole, corrupt.
		add("malformed", format.AppendRecord(clone(), layout, []byte{0x07, 0, 0, 0, 0}))
		// The same torn tail, in strict mode: a refusal.
		add("strict_tail", append(clone(), next[:hdr+5]...), "--mode", "strict")
		// A record over the maximum record size.
		add("too_large", clone(), "--max-record-size", "100")
	}
	cs = append(cs,
		goldenCase{name: "empty", data: []byte{}},
		goldenCase{name: "torn_header", data: format.FileHeader[:5]},
		goldenCase{name: "not_a_database", data: []byte("hello, world: this is a text file\n")},
		goldenCase{name: "zeros", data: make([]byte, 4096)},
		goldenCase{name: "unsupported_version", data: append([]byte{'L', 'R', 'D', 'B', 0, 2, 0, 0}, buildFixture(format.LayoutV1).data[8:]...)},
	)
	return cs
}

// writeCases writes the golden cases into dir as NAME.db.
func writeCases(t *testing.T, dir string, cs []goldenCase) {
	t.Helper()
	for _, c := range cs {
		if err := os.WriteFile(filepath.Join(dir, c.name+".db"), c.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// lines splits s into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// readAll is the file's bytes; failing to read it fails the test.
func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
