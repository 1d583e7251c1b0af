package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/streamwal/recovery/db"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// TestGolden runs verify and dump on a log of each layout with each kind of damage (and the
// files that are not logs at all) and compares their human-readable output, stderr and exit
// status with testdata/verify.golden and testdata/dump.golden. After a deliberate change of
// output, regenerate them with
//
//	go test ./cmd/walrec -run TestGolden -update
//
// and review the diff.
func TestGolden(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cs := goldenCases()
	writeCases(t, dir, cs)
	t.Chdir(dir) // file names in the output are relative: the same on every machine
	cs = append(cs, goldenCase{name: "missing"})

	for _, cmd := range []string{"verify", "dump"} {
		var b strings.Builder
		for _, c := range cs {
			args := append([]string{cmd, c.name + ".db"}, c.flags...)
			r := walrec(t, args...)
			fmt.Fprintf(&b, "$ walrec %s\n%s", strings.Join(args, " "), r.stdout)
			if r.stderr != "" {
				fmt.Fprintf(&b, "[stderr]\n%s", r.stderr)
			}
			fmt.Fprintf(&b, "[exit %d]\n\n", r.code)
			if cmd == "verify" {
				// The sequential loop and the parallel pipeline say the same thing, byte for byte.
				for _, p := range []string{"1", "4"} {
					if r2 := walrec(t, append(args, "--parallelism", p)...); r2 != r {
						t.Errorf("%s with --parallelism %s differs from the default:\n%+v\n%+v", c.name, p, r2, r)
					}
				}
			}
		}
		compareGolden(t, filepath.Join(wd, "testdata", cmd+".golden"), b.String())
	}
}

// compareGolden compares got with the golden file, or rewrites it under -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got == string(want) {
		return
	}
	// Show the first case that differs.
	g, w := strings.Split(got, "\n\n"), strings.Split(string(want), "\n\n")
	for i := range max(len(g), len(w)) {
		var gi, wi string
		if i < len(g) {
			gi = g[i]
		}
		if i < len(w) {
			wi = w[i]
		}
		if gi != wi {
			t.Fatalf("%s differs (run with -update to accept the new output):\n--- got:\n%s\n--- want:\n%s", filepath.Base(path), gi, wi)
		}
	}
}

// goOption is a Go option or function a message might name (db.ReadOnly(), recovery.WithX).
var goOption = regexp.MustCompile(`\b(db|recovery)\.[A-Z]\w*|\bWith[A-Z]\w*\(`)

// volatileJSON are the fields whose values change from run to run (times, rates, memory,
// the default parallelism): goldens hold "~" for them.
var volatileJSON = regexp.MustCompile(`"(seconds|mb_per_s|payload_mb_per_s|peak_buffered|heap_growth|open_before_seconds|compact_seconds|compact_mb_per_second|open_after_seconds|elapsed_seconds|parallelism)":(-?[0-9][0-9.eE+-]*)`)

// volatileText is the same in text: bench's table rows and compact's times.
var volatileText = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?m)^(raw read|parallelism \d+( \(\d+\))?) .*$`), "$1 ~"},
	{regexp.MustCompile(`\d+\.\d{3} s\b`), "~ s"},
	{regexp.MustCompile(`\(\d+ MB/s of the old log\)`), "(~ MB/s of the old log)"},
}

func normalize(s string) string {
	s = volatileJSON.ReplaceAllString(s, `"$1":"~"`)
	for _, v := range volatileText {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// jsonKeys is the keys of a JSON object line, in order.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", line)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// goldenBook runs commands and writes what they say, for a golden file; it also holds every
// JSON line's keys by command and type, which must be the same whatever the outcome.
type goldenBook struct {
	t    *testing.T
	b    strings.Builder
	keys map[string][]string // "command/type" -> keys
	from map[string]string   // the first run that showed them
}

func (g *goldenBook) run(args ...string) result {
	g.t.Helper()
	r := walrec(g.t, args...)
	fmt.Fprintf(&g.b, "$ walrec %s\n%s", strings.Join(args, " "), normalize(r.stdout))
	if r.stderr != "" {
		fmt.Fprintf(&g.b, "[stderr]\n%s", normalize(r.stderr))
	}
	fmt.Fprintf(&g.b, "[exit %d]\n\n", r.code)
	if slices.Contains(args, "--json") {
		worst := int64(-1) // the worst report's exit: the command's (one report per FILE)
		defer func() {
			if worst >= 0 && worst != int64(r.code) {
				g.t.Errorf("%v: the reports say exit %d at worst, the command %d", args, worst, r.code)
			}
		}()
		for _, l := range lines(r.stdout) {
			j := decodeJSON(g.t, l)
			if j.num(g.t, "version") != 1 || j.str(g.t, "command") != args[0] {
				g.t.Errorf("%v: a line without the convention's head: %s", args, l)
			}
			if j.str(g.t, "type") == "report" {
				worst = max(worst, j.num(g.t, "exit"))
			}
			k := args[0] + "/" + j.str(g.t, "type")
			keys := jsonKeys(g.t, l)
			if prev, ok := g.keys[k]; !ok {
				g.keys[k], g.from[k] = keys, strings.Join(args, " ")
			} else if !slices.Equal(prev, keys) {
				g.t.Errorf("%s lines differ in their fields:\n  %s: %v\n  %s: %v", k, g.from[k], prev, strings.Join(args, " "), keys)
			}
		}
		if ls := lines(r.stdout); len(ls) > 0 && r.code < 128 {
			if last := decodeJSON(g.t, ls[len(ls)-1]); last.str(g.t, "type") != "report" {
				g.t.Errorf("%v: the last line is not a report", args)
			}
		} else if len(ls) == 0 && !slices.Contains(args, "--quiet") {
			g.t.Errorf("%v --json printed nothing", args)
		}
	}
	return r
}

// both runs args as text and as --json.
func (g *goldenBook) both(args ...string) {
	g.t.Helper()
	g.run(args...)
	g.run(append(args, "--json")...)
}

// TestGoldenCommands: every command's text and JSON for its main outcomes, against
// testdata/COMMAND.golden (regenerate with -update, as TestGolden). Times, rates and memory
// are "~". Every JSON line carries version 1 and its command, every run's last line is its
// report, the report's exit is the command's, and a type's lines have the same fields in
// every outcome (a missing file's included): "every field is always there".
func TestGoldenCommands(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	book := &goldenBook{t: t, keys: map[string][]string{}, from: map[string]string{}}
	cs := goldenCases()
	writeCases(t, dir, cs)
	fresh := func(name string) string { // a copy of a case, for a command that changes it
		t.Helper()
		for _, c := range cs {
			if c.name == name {
				p := "w-" + name + ".db"
				os.Remove(p)
				if err := os.WriteFile(p, c.data, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
		}
		t.Fatalf("no case %s", name)
		return ""
	}
	golden := func(name string, body func(g *goldenBook)) {
		t.Helper()
		book.b.Reset()
		body(book)
		out := book.b.String()
		// A person at the command line is never told to use a Go option, nor a flag the
		// command does not have (compact, bench and the others have no --mode).
		if m := goOption.FindString(out); m != "" {
			t.Errorf("%s names the Go option %q", name, m)
		}
		if cmd, _, _ := strings.Cut(name, "."); !slices.Contains([]string{"verify", "recover", "dump"}, cmd) &&
			strings.Count(out, "--mode ") != strings.Count(out, "walrec recover --mode ") {
			t.Errorf("%s tells a user of walrec %s to pass --mode, which it does not take", name, cmd)
		}
		compareGolden(t, filepath.Join(wd, "testdata", name+".golden"), out)
	}
	hold := func(path string) func() { // a writer holding the database's lock
		t.Helper()
		d, err := db.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return func() { d.Close() }
	}

	golden("verify.json", func(g *goldenBook) {
		for _, c := range append(cs, goldenCase{name: "missing"}) {
			g.run(append([]string{"verify", c.name + ".db", "--json"}, c.flags...)...)
		}
	})
	golden("verify.several", func(g *goldenBook) {
		// One report each, in order; the status is the worst.
		g.both("verify", "clean.v1.db", "torn_tail.v1.db", "corrupt.legacy.db", "missing.db", "empty.db")
		g.both("verify", "clean.v1.db", "torn_tail.legacy.db")
	})
	golden("dump.json", func(g *goldenBook) {
		for _, c := range append(cs, goldenCase{name: "missing"}) {
			g.run(append([]string{"dump", c.name + ".db", "--json"}, c.flags...)...)
		}
	})
	golden("dump.ranges", func(g *goldenBook) {
		g.both("dump", "clean.v1.db", "--start-offset", "100", "--end-offset", "200")
		g.both("dump", "clean.v1.db", "--end-offset", "90")
		g.both("dump", "torn_tail.v1.db", "--from", "500", "--bad-bytes", "16")
		g.both("dump", "clean.legacy.db", "--from", "4", "--max-bytes", "4")
		g.both("dump", "clean.v1.db", "torn_tail_short.legacy.db", "--limit", "1", "--bad-bytes", "8")
	})
	golden("recover", func(g *goldenBook) {
		g.both("recover", fresh("clean.v1"))
		g.run("recover", fresh("torn_tail.v1"))
		g.run("recover", fresh("torn_tail.legacy"), "--json")
		g.both("recover", fresh("corrupt.v1"))
		g.run("recover", fresh("corrupt.v1"), "--mode", "point-in-time", "--json")
		g.both("recover", "missing.db")
		os.Remove("copy.db")
		g.run("recover", "torn_tail.v1.db", "--output", "copy.db")
		os.Remove("copy.db")
		g.run("recover", "torn_tail.v1.db", "--output", "copy.db", "--json")
		p := fresh("clean.legacy")
		done := hold(p)
		g.both("recover", p)
		done()
	})
	golden("bench", func(g *goldenBook) {
		g.both("bench", "torn_tail.v1.db", "--parallelism", "1,2", "--runs", "1")
		g.both("bench", "empty.db")
		g.both("bench", "corrupt.legacy.db", "--runs", "1")
		g.both("bench", "missing.db")
	})
	golden("compact", func(g *goldenBook) {
		g.both("compact", fresh("clean.v1"))
		g.run("compact", fresh("torn_tail.v1"))
		g.run("compact", fresh("torn_tail.legacy"), "--json")
		g.both("compact", "corrupt.v1.db")
		g.both("compact", "missing.db")
		g.both("compact", "not_a_database.db")
		p := fresh("clean.legacy")
		done := hold(p)
		g.both("compact", p)
		done()
	})
	golden("sidecars", func(g *goldenBook) {
		p := fresh("torn_tail.v1")
		walrec(t, "recover", p, "--quiet").mustExit(t, exitOK, "recover")
		q := fresh("torn_tail.legacy")
		walrec(t, "recover", q, "--quiet").mustExit(t, exitOK, "recover")
		os.Remove(q) // its sidecar outlives it
		g.both("sidecars", p)
		g.both("sidecars", q)
		g.both("sidecars", "clean.v1.db")
		g.both("sidecars", "missing.db")
		os.Mkdir("adir", 0o755)
		g.both("sidecars", "adir")
		g.both("sidecars", os.DevNull)
		done := hold(p)
		g.both("sidecars", p, "--clear")
		done()
		g.run("sidecars", p, "--clear", "--json")
		g.run("sidecars", q, "--clear")
	})
	golden("gen", func(g *goldenBook) {
		for _, damage := range []string{"none", "torn_tail", "damaged_tail", "corrupt", "torn_header"} {
			for _, asJSON := range []bool{false, true} {
				args := []string{"gen", "g-" + damage + ".db", "--size", "64KiB", "--damage", damage, "--force"}
				if asJSON {
					args = append(args, "--json")
				}
				g.run(args...)
			}
		}
		g.both("gen", "g-none.db", "--size", "64KiB")
		g.both("gen", "adir", "--size", "64KiB")
	})
	golden("backup", func(g *goldenBook) {
		for _, f := range []string{"full.bak", "full.json", "inc.bak"} {
			os.Remove(f)
		}
		p := fresh("clean.v1")
		g.run("backup", p, "full.bak", "--info", "full.json")
		walrec(t, "gen", "b.db", "--size", "64KiB", "--quiet", "--force")
		g.run("backup", p, "full.bak", "--json")
		os.Remove("full2.bak")
		g.run("backup", "torn_tail.v1.db", "full2.bak", "--json")
		g.both("backup", "corrupt.v1.db", "c.bak")
		g.both("backup", "missing.db", "m.bak")
		g.run("backup", p, "inc.bak", "--since", "full.json", "--json")
	})
	golden("restore", func(g *goldenBook) {
		os.Remove("r1.db")
		g.run("restore", "clean.v1.db", "r1.db")
		os.Remove("r2.db")
		g.run("restore", "clean.legacy.db", "r2.db", "--json")
		g.both("restore", "torn_tail.v1.db", "r3.db")
		os.Remove("r4.db")
		g.run("restore", "torn_tail.v1.db", "r4.db", "--prefix", "--json")
		g.both("restore", "missing.db", "r5.db")
	})
	golden("salvage", func(g *goldenBook) {
		for _, f := range []string{"s1.db", "s2.db", "s3.db"} {
			os.Remove(f)
		}
		g.run("salvage", "corrupt.v1.db", "--output", "s1.db")
		g.run("salvage", "corrupt.legacy.db", "--output", "s2.db", "--json")
		g.run("salvage", "clean.v1.db", "--output", "s3.db", "--json")
		g.both("salvage", "clean.v1.db", "--output", "s3.db")
		g.both("salvage", "missing.db", "--output", "s4.db")
	})
	golden("get", func(g *goldenBook) {
		g.both("get", "clean.v1.db", "user:1")
		g.both("get", "clean.v1.db", "user:2")
		g.both("get", "clean.v1.db", "00ff10", "--hex")
		g.both("get", "torn_tail.legacy.db", "user:3")
		g.both("get", "corrupt.v1.db", "user:1")
		g.both("get", "missing.db", "user:1")
	})
	golden("scan", func(g *goldenBook) {
		g.both("scan", "clean.v1.db")
		g.both("scan", "clean.v1.db", "--prefix", "user:")
		g.both("scan", "clean.legacy.db", "--from", "long", "--to", "user:3", "--limit", "2")
		g.both("scan", "corrupt.legacy.db")
		g.both("scan", "missing.db")
	})
}
