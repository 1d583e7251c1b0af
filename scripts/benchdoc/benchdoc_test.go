package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/run holds short excerpts of real outputs of the steps of scripts/measure-all.sh:
// BenchmarkRecover (4 KiB records: raw-pread, oracle/discard, discard/par=1 and 2, three runs
// each), BenchmarkConcurrentCommits (1 and 64 writers, three runs), two walrec bench processes,
// a walrec bench that failed (exit 3: no such file), verify-vs-dd, the memory tests' logs
// without TestHeapStaysSmallOn512MiBLog's, the peers' results.json (256 B discard: raw read,
// parallelism 1 and 2, pebble; five replays each) and gc-pacing (three rounds). Every other
// step is missing.

func testPage(t *testing.T) string {
	t.Helper()
	text, built, total := generate(loadRun("testdata/run"))
	if built == 0 || built >= total {
		t.Fatalf("%d of %d sections built; want some but not all (the testdata lacks steps)", built, total)
	}
	return text
}

// section is the page's text from the heading title to the next heading of the same level.
func section(t *testing.T, text, title string) string {
	t.Helper()
	i := strings.Index(text, "\n"+title+"\n")
	if i < 0 {
		t.Fatalf("no heading %q in the page", title)
	}
	rest := text[i+1+len(title):]
	level := len(strings.SplitN(title, " ", 2)[0])
	for j := 0; j < len(rest); {
		k := strings.Index(rest[j:], "\n#")
		if k < 0 {
			break
		}
		j += k + 1
		if h := strings.SplitN(rest[j:], " ", 2)[0]; strings.Trim(h, "#") == "" && len(h) <= level {
			return rest[:j]
		}
	}
	return rest
}

func wantLines(t *testing.T, where string, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("%s: no line %q in:\n%s", where, l, text)
		}
	}
}

func TestRecoveryMediansAndRatios(t *testing.T) {
	s := section(t, testPage(t), "### 4 KiB records")
	// Medians of three runs; ratios against raw-pread's and the oracle's medians and against
	// parallelism 1's, all of the same run.
	wantLines(t, "recovery, 4 KiB", s,
		"| raw-pread | 19,039 | 100 % | – | – |",
		"| oracle/discard | 1,915 | 10 % | – | – |",
		"| discard/par=1 | 6,941 | 36 % | 3.63x | 1.00x |",
		"| discard/par=2 | 7,006 | 37 % | 3.66x | 1.01x |",
		"Each figure is the median of 3 runs.",
	)
	if strings.Contains(s, "256 B") || strings.Contains(s, "store/") {
		t.Errorf("rows that the output does not have:\n%s", s)
	}
}

func TestCommitsMediansAndRatios(t *testing.T) {
	s := section(t, testPage(t), "## Group commit (`BenchmarkConcurrentCommits`)")
	wantLines(t, "group commit", s,
		"go test -run '^$' -bench ConcurrentCommits -benchtime 300x -count 3 ./db/",
		"| 1 | 6,836 | 6,209 | 0.91x |",
		"| 64 | 5,663 | 90,882 | 16.0x |",
	)
}

func TestPeersMediansOfReplays(t *testing.T) {
	s := section(t, testPage(t), "## Against the logs people use instead (`benchmarks/peers`)")
	// 256 MiB of payload over the median of five replays' seconds; this project's best
	// (parallelism 2) over each other row.
	wantLines(t, "peers", s,
		"| raw read (1 MiB reads, no parsing) | 17,007 (0.33x) |",
		"| this project (v1), parallelism 1 | 3,322 |",
		"| this project (v1), parallelism 2 | **5,694** |",
		"| pebble record | 1,814 (3.14x) |",
		"Each figure is the median of 5 replays.",
	)
}

func TestGCPacingRecomputesMedians(t *testing.T) {
	s := section(t, testPage(t), "## Garbage-collection pacing (`scripts/gc-pacing.sh`)")
	wantLines(t, "gc pacing", s,
		"| 256 B | 100 | 1,137 | 1,467 | 666 | 1.29x | 2.20x |",
		"| 4 KiB | 200 | 2,563 | 3,438 | 2,203 | 1.34x | 1.56x |",
		"Each figure is the median of 3 rounds.",
	)
}

func TestWalrecBenchAndVerify(t *testing.T) {
	text := testPage(t)
	b := section(t, text, "## `walrec bench`, whole processes")
	// Two processes: medians of 12,435 and 8,116 file MB/s for the raw read.
	wantLines(t, "walrec bench", b,
		"| raw read | 10,275 | 100 % | – | 1.0 MiB |",
		"Each figure is the median of 2 processes.",
		"Not measured in this run: step bench256: the command exited with status 3 (no such file or directory).",
	)
	v := section(t, text, "## `walrec verify` against `dd`")
	wantLines(t, "verify", v,
		"| `dd bs=1M` | 6 ms | 5 ms | 3 | 100 % |",
		"| `walrec verify` | 13 ms | 9 ms | 3 | 46 % |",
	)
}

func TestNotMeasured(t *testing.T) {
	text := testPage(t)
	wantLines(t, "missing step", section(t, text, "### Verify from a pipe (`BenchmarkStream`)"),
		"Not measured in this run: step stream: no output (stream.txt): the step did not run.")
	wantLines(t, "missing test log", section(t, text, "### A large log into a map (`TestHeapStaysSmallOn512MiBLog`)"),
		"Not measured in this run: no TestHeapStaysSmallOn512MiBLog results in the output.")
	wantLines(t, "memory, pool bound", section(t, text, "### The pool's bound (`TestMemoryBoundedByPool`)"),
		"| 16 KiB | 2 KiB | 1 | 1 | 1.0 MiB | 41x | 18,470 B | 25,728 B | 72 % |")
	// A section with no output keeps its fixed text, says why under each heading, and has no
	// table.
	d := section(t, text, "## The database's open")
	if n := strings.Count(d, "\nNot measured in this run: step "); n != 3 {
		t.Errorf("%d not-measured lines in the database's open, want 3:\n%s", n, d)
	}
	if strings.Contains(d, "| --") {
		t.Errorf("a table in a section that was not measured:\n%s", d)
	}
}

func TestHeader(t *testing.T) {
	h := testPage(t)
	h = h[:strings.Index(h, "\n## ")]
	for _, want := range []string{
		"- Command: `QUICK=1 scripts/measure-all.sh`",
		"- Date (UTC): 2026-12-08 03:54:30 to 03:55:09 (0 min 39 s)",
		"AMD EPYC (`/proc/cpuinfo`), 2 cores, 23.5 GiB of memory",
		"Linux 6.18.44-fc-v1300; go1.26.8 linux/amd64",
		"0.94 0.90 1.20 at the start, 3.33 1.53 1.39 at the end; the 1-minute figure was 0.94 to 3.33",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %q:\n%s", want, h)
		}
	}
}

func TestNothingMeasuredWritesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "page.md")
	var stderr bytes.Buffer
	if code := cli([]string{"-in", dir, "-out", out}, &bytes.Buffer{}, &stderr); code != 1 {
		t.Fatalf("exit %d on an empty run directory, want 1 (%s)", code, stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a page was written although no section was measured")
	}
	var stdout bytes.Buffer
	if code := cli([]string{"-in", "testdata/run", "-out", "-"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "# Benchmarks\n") {
		t.Fatalf("exit %d on the testdata run: %s", code, stderr.String())
	}
}

func TestParse(t *testing.T) {
	b := parseBenches("BenchmarkX/par=1-16 \t 3\t 100 ns/op\t 7.5 MB/s\t 2 poolMiB\nBenchmarkX/par=1-16 \t 3\t 300 ns/op\t 9.5 MB/s\n--- FAIL: BenchmarkY\n")
	if v, n, ok := b.get("BenchmarkX/par=1", "ns/op"); !ok || n != 2 || v != 200 {
		t.Errorf("ns/op median %v of %d (%v), want 200 of 2", v, n, ok)
	}
	if v, n, _ := b.get("BenchmarkX/par=1", "poolMiB"); n != 1 || v != 2 {
		t.Errorf("poolMiB %v of %d, want 2 of 1", v, n)
	}
	if median([]float64{5, 1, 3}) != 3 || median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Error("median")
	}
	for v, want := range map[float64]string{1234567.4: "1,234,567", 99.94: "99.9", 3.14159: "3.14", 100: "100"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}
