package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// sections, in page order. Each writes its heading and fixed text, then its tables.
var sections = []func(*page, *run){
	recoverySection,
	applySection,
	tuneSection,
	walrecBenchSection,
	verifySection,
	memorySection,
	streamSection,
	openSection,
	commitSection,
	compactSection,
	peersSection,
	gcSection,
	elsewhereSection,
}

// sizeLabel: "256B" -> "256 B", "4KiB" -> "4 KiB".
func sizeLabel(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return s
	}
	return s[:i] + " " + s[i:]
}

// sub-benchmark values named "<prefix><key>/..." : the distinct keys, in order of appearance.
func keys(b *benches, prefix string) []string {
	var out []string
	for _, n := range b.order {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			k, _, _ := strings.Cut(rest, "/")
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// mergeRounds folds sub-benchmarks "X/round=a", "X/round=b" into "X".
func mergeRounds(b *benches) *benches {
	m := &benches{vals: map[string]map[string][]float64{}}
	re := regexp.MustCompile(`/round=[^/]+$`)
	for _, n := range b.order {
		k := re.ReplaceAllString(n, "")
		if m.vals[k] == nil {
			m.vals[k] = map[string][]float64{}
			m.order = append(m.order, k)
		}
		for u, vs := range b.vals[n] {
			m.vals[k][u] = append(m.vals[k][u], vs...)
		}
	}
	return m
}

func noResults(what string) error {
	return fmt.Errorf("no %s results in the output", what)
}

// --- Recovery throughput ---

func recoverySection(p *page, r *run) {
	p.section("Recovery throughput", "`BenchmarkRecover` (`pipeline/bench_test.go`): `recovery.Recover` of a log of one-set\n"+
		"transactions over 1,024 keys (256 MiB, or `BENCH_LOG_MIB` MiB when the command sets it), in the\n"+
		"page cache, read through `os.File`. Rows: `raw-pread` reads the whole file into one reused 1 MiB\n"+
		"buffer and does nothing else (the limit); `oracle/*` is the whole-file reference (`tests/oracle`:\n"+
		"`os.ReadFile`, then a walk that discards or builds a `map[string]string`: the baseline);\n"+
		"`discard/par=n` replays into `recovery.Discard`, `map/par=n` into a Go map whose values are reused\n"+
		"in place, `store/par=n` is the database's read-only `db.Open` of the same file. The discard and map\n"+
		"rows are compared with the oracle of their kind, the store with the oracle's map, and every\n"+
		"parallelism with parallelism 1 of its kind.")
	s := r.step("recover")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		const pre = "BenchmarkRecover/size="
		sizes := keys(b, pre)
		if len(sizes) == 0 {
			return "", noResults("BenchmarkRecover")
		}
		var out strings.Builder
		for _, size := range sizes {
			get := func(c string) (float64, int, bool) { return b.get(pre+size+"/"+c, "MB/s") }
			var cases []string
			for _, n := range b.order {
				if c, ok := strings.CutPrefix(n, pre+size+"/"); ok {
					cases = append(cases, c)
				}
			}
			slices.SortStableFunc(cases, func(x, y string) int { return recoverRank(x) - recoverRank(y) })
			raw, _, rawOK := get("raw-pread")
			t := newTable("case", "MB/s", "of raw pread", "against the oracle", "against parallelism 1")
			var cnt counts
			for _, c := range cases {
				v, n, ok := get(c)
				if !ok {
					continue
				}
				cnt.add(n)
				row := []string{c, num(v), "–", "–", "–"}
				if rawOK {
					row[2] = pct(v, raw)
				}
				if kind, _, ok := strings.Cut(c, "/par="); ok {
					if c == kind+"/par=0" {
						row[0] += " (default)"
					}
					oracle := "oracle/" + kind
					if kind == "store" {
						oracle = "oracle/map"
					}
					if o, _, ok := get(oracle); ok {
						row[3] = ratio(v, o)
					}
					if p1, _, ok := get(kind + "/par=1"); ok {
						row[4] = ratio(v, p1)
					}
				}
				t.add(row...)
			}
			fmt.Fprintf(&out, "### %s records\n\n%s\n%s\n\n", sizeLabel(size), t, cnt)
		}
		return out.String(), nil
	})
}

// recoverRank orders BenchmarkRecover's cases: the limit, then each oracle before its kind.
func recoverRank(c string) int {
	kind, par, _ := strings.Cut(c, "/par=")
	base := map[string]int{"raw-pread": 0, "oracle": 100, "discard": 200, "map": 400, "store": 500}
	rank, ok := base[kind]
	switch {
	case c == "oracle/discard":
		return 100
	case c == "oracle/map":
		return 300
	case !ok:
		return 900
	}
	if n, err := strconv.Atoi(par); err == nil {
		if n == 0 {
			n = 99 // the default last
		}
		rank += 1 + n
	}
	return rank
}

// --- The ordered applier ---

func applySection(p *page, r *run) {
	p.section("The ordered applier alone", "`BenchmarkApplyBatch` (`internal/replay/bench_test.go`): one 1 MiB chunk of verified\n"+
		"records, hot in cache, replayed into an applier that walks every op and folds its key and value\n"+
		"into a digest. This is the one stage of recovery that cannot run in parallel, so its cost per\n"+
		"record bounds recovery at any parallelism. MB/s here is of the chunk's bytes.")
	s := r.step("applybatch")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		sizes := keys(b, "BenchmarkApplyBatch/size=")
		if len(sizes) == 0 {
			return "", noResults("BenchmarkApplyBatch")
		}
		t := newTable("records", "ns per record", "MB/s of the chunk", "µs per chunk")
		var cnt counts
		for _, size := range sizes {
			name := "BenchmarkApplyBatch/size=" + size
			rec, n, _ := b.get(name, "ns/record")
			mbs, _, _ := b.get(name, "MB/s")
			op, _, _ := b.get(name, "ns/op")
			cnt.add(n)
			t.add(sizeLabel(size), num(rec), num(mbs), num(op/1000))
		}
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})
}

// --- Read size and parallelism ---

func tuneSection(p *page, r *run) {
	p.section("Read size and parallelism", "`BenchmarkTune` (`pipeline/tune_test.go`): discard recovery of the logs of \"Recovery\n"+
		"throughput\" at read sizes from 256 KiB to 4 MiB, parallelism 1 and 2, the default pool depth.\n"+
		"Each cell gives payload MB/s and, in brackets, the ratio against the default read size (1 MiB,\n"+
		"`recovery.DefaultReadSize`) in the same column.")
	s := r.step("tune")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		re := regexp.MustCompile(`^BenchmarkTune/size=([^/]+)/read=(\d+)KiB/par=(\d+)/depth=0$`)
		type col struct{ size, par string }
		var cols []col
		var reads []int
		vals := map[col]map[int]float64{}
		var cnt counts
		for _, n := range b.order {
			m := re.FindStringSubmatch(n)
			if m == nil {
				continue
			}
			c := col{m[1], m[3]}
			rd, _ := strconv.Atoi(m[2])
			v, k, ok := b.get(n, "MB/s")
			if !ok {
				continue
			}
			cnt.add(k)
			if vals[c] == nil {
				vals[c] = map[int]float64{}
				cols = append(cols, c)
			}
			vals[c][rd] = v
			if !slices.Contains(reads, rd) {
				reads = append(reads, rd)
			}
		}
		if len(cols) == 0 {
			return "", noResults("BenchmarkTune")
		}
		slices.Sort(reads)
		head := []string{"read size"}
		for _, c := range cols {
			head = append(head, fmt.Sprintf("%s, parallelism %s", sizeLabel(c.size), c.par))
		}
		t := newTable(head...)
		for _, rd := range reads {
			row := []string{kib(rd)}
			for _, c := range cols {
				v, ok := vals[c][rd]
				cell := "–"
				if ok {
					cell = num(v)
					if base, ok := vals[c][1024]; ok {
						cell += " (" + ratio(v, base) + ")"
					}
				}
				row = append(row, cell)
			}
			t.add(row...)
		}
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})
}

func kib(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d MiB", n/1024)
	}
	return fmt.Sprintf("%d KiB", n)
}

// --- walrec bench ---

type walrecRow struct {
	Type    string  `json:"type"`
	Setting string  `json:"setting"`
	MBps    float64 `json:"mb_per_s"`
	Peak    float64 `json:"peak_buffered"`
}

// walrecBench reads the --json rows of several walrec bench processes: per setting, in order,
// every process's file MB/s and pool peak.
func walrecBench(text string) (settings []string, mbps, peak map[string][]float64) {
	mbps, peak = map[string][]float64{}, map[string][]float64{}
	for _, line := range strings.Split(text, "\n") {
		var row walrecRow
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &row) != nil || row.Type != "row" {
			continue
		}
		if _, ok := mbps[row.Setting]; !ok {
			settings = append(settings, row.Setting)
		}
		mbps[row.Setting] = append(mbps[row.Setting], row.MBps)
		peak[row.Setting] = append(peak[row.Setting], row.Peak)
	}
	return settings, mbps, peak
}

func walrecBenchSection(p *page, r *run) {
	p.section("`walrec bench`, whole processes", "`walrec bench` of a log of 4 KiB records and one of 256 B records, written by `walrec gen`\n"+
		"and read from the page cache, run as fresh processes one after another in the run's temporary\n"+
		"directory. Each process measures every setting once, recovery read-only with records discarded,\n"+
		"and the raw read (the file into one reused 1 MiB buffer, no work: the limit) last. Figures are\n"+
		"file MB/s (bytes of the file, headers included), compared with the raw read and with\n"+
		"parallelism 1 of the same file; pool peak is recovery's own accounting of its buffers.")
	gen := r.step("gen")
	p.commands(gen, r.step("bench4k"), r.step("bench256"))
	for _, f := range []struct{ step, title string }{{"bench4k", "4 KiB records"}, {"bench256", "256 B records"}} {
		p.sub(f.title, "")
		s := r.step(f.step)
		p.measured([]step{gen, s}, func() (string, error) {
			settings, mbps, peak := walrecBench(s.text)
			if len(settings) == 0 {
				return "", noResults("walrec bench --json")
			}
			raw := mbps["raw read"]
			p1 := mbps["parallelism 1"]
			t := newTable("setting", "file MB/s", "of the raw read", "against parallelism 1", "pool peak")
			var cnt counts
			for _, st := range settings {
				v := median(mbps[st])
				cnt.add(len(mbps[st]))
				row := []string{st, num(v), "–", "–", mib(median(peak[st]))}
				if len(raw) > 0 {
					row[2] = pct(v, median(raw))
				}
				if len(p1) > 0 && st != "raw read" {
					row[3] = ratio(v, median(p1))
				}
				t.add(row...)
			}
			return fmt.Sprintf("%s\n%s\n\n", t, strings.Replace(cnt.String(), "runs", "processes", 1)), nil
		})
	}
}

// --- walrec verify against dd ---

func verifySection(p *page, r *run) {
	p.section("`walrec verify` against `dd`", "`scripts/verify-vs-dd.sh`: `walrec verify` of the 4 KiB log of the section above, as a\n"+
		"whole process, against `dd bs=1M of=/dev/null` of the same cached file, in alternating rounds\n"+
		"(`$W` is the run's temporary directory). Each process is timed from outside with `date +%s%N`,\n"+
		"so process start counts: `/bin/true` is the floor. The last column is dd's median time over\n"+
		"the process's median time: verify's speed as a share of dd's.")
	s := r.step("verifydd")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		re := regexp.MustCompile(`^(\S+)\s+best\s+(\d+) ms\s+median\s+(\d+) ms\s+\((\d+) runs\)$`)
		names := map[string]string{"dd": "`dd bs=1M`", "verify": "`walrec verify`", "verify-p1": "`walrec verify --parallelism 1`", "true": "`/bin/true`"}
		type row struct {
			name              string
			best, med, rounds float64
		}
		var rows []row
		var dd float64
		for _, line := range strings.Split(s.text, "\n") {
			m := re.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil {
				continue
			}
			best, _ := strconv.ParseFloat(m[2], 64)
			med, _ := strconv.ParseFloat(m[3], 64)
			n, _ := strconv.ParseFloat(m[4], 64)
			rows = append(rows, row{m[1], best, med, n})
			if m[1] == "dd" {
				dd = med
			}
		}
		if len(rows) == 0 || dd == 0 {
			return "", noResults("verify-vs-dd")
		}
		t := newTable("process", "median", "best", "runs", "speed against dd (medians)")
		for _, x := range rows {
			label := names[x.name]
			if label == "" {
				label = x.name
			}
			share := "–"
			if x.name != "true" {
				share = pct(dd, x.med)
			}
			t.add(label, fmt.Sprintf("%.0f ms", x.med), fmt.Sprintf("%.0f ms", x.best), fmt.Sprintf("%.0f", x.rounds), share)
		}
		out := t.String() + "\n"
		if m := regexp.MustCompile(`peak RSS of one verify: (\d+) KiB`).FindStringSubmatch(s.text); m != nil {
			kb, _ := strconv.ParseFloat(m[1], 64)
			out += fmt.Sprintf("Peak RSS of one `walrec verify` process (`/usr/bin/time`): %.1f MiB.\n\n", kb/1024)
		}
		return out, nil
	})
}

// --- Memory ---

// logMatches applies re to every t.Logf message of a test output.
func logMatches(text string, re *regexp.Regexp) [][]string {
	var out [][]string
	for _, l := range testLogs(text) {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m)
		}
	}
	return out
}

func f64(s string) float64 {
	v, _ := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return v
}

func memorySection(p *page, r *run) {
	p.section("Memory", "What recovery and the database hold in memory, from tests that log what they measure and\n"+
		"fail when it passes its bound (docs/design.md, \"The memory bound\"). Each test runs once\n"+
		"(`-count=1`), so these are single measurements, not medians. Heap figures are the sampled peak\n"+
		"growth of the Go heap; the pool's figures are its own accounting. `WALREC_DEEP=1` selects the\n"+
		"larger logs (docs/testing.md).")
	mem := r.step("memory")
	memdb := r.step("memorydb")
	p.commands(mem, memdb)

	p.sub("The pool's bound (`TestMemoryBoundedByPool`)", "Logs many times larger than the bound, with records smaller and larger than a read: the\npool's peak against the bound.")
	p.measured([]step{mem}, func() (string, error) {
		re := regexp.MustCompile(`^\{readSize:(\d+) maxPayload:(\d+) par:(\d+) depth:(\d+)\}: (\d+)-byte log \((\d+)x the bound\): pool peak (\d+) bytes <= bound (\d+)$`)
		ms := logMatches(mem.text, re)
		if len(ms) == 0 {
			return "", noResults("TestMemoryBoundedByPool")
		}
		t := newTable("read size", "payloads up to", "parallelism", "depth", "log", "log / bound", "pool peak", "bound", "peak / bound")
		for _, m := range ms {
			t.add(kib(int(f64(m[1])/1024)), kib(int(f64(m[2])/1024)), m[3], m[4], mib(f64(m[5])), m[6]+"x",
				group(int64(f64(m[7])))+" B", group(int64(f64(m[8])))+" B", pct(f64(m[7]), f64(m[8])))
		}
		return t.String() + "\n", nil
	})

	p.sub("The smallest records (`TestTinyRecordsStayWithinTheBound`)", "Logs of the smallest records there are (a delete of an empty key: 13 bytes in the legacy\nlayout, 17 in v1), parallelism 8, pool depth 16, 1 MiB reads.")
	p.measured([]step{mem}, func() (string, error) {
		re := regexp.MustCompile(`^(\d+)-byte records: pool peak ([\d.]+) MiB, live heap growth ([\d.]+) MiB, bound ([\d.]+) MiB$`)
		ms := logMatches(mem.text, re)
		if len(ms) == 0 {
			return "", noResults("TestTinyRecordsStayWithinTheBound")
		}
		t := newTable("record", "pool peak", "live heap growth", "bound", "heap growth / bound")
		for _, m := range ms {
			t.add(m[1]+" bytes", mibs(f64(m[2])), mibs(f64(m[3])), mibs(f64(m[4])), pct(f64(m[3]), f64(m[4])))
		}
		return t.String() + "\n", nil
	})

	p.sub("A large log into a map (`TestHeapStaysSmallOn512MiBLog`)", "A log of 4 KiB records over 256 keys replayed into a Go map at parallelism 1 and 4, against\nthe whole-file oracle reading the same file, in the same test: the heap's peak growth.")
	p.measured([]step{mem}, func() (string, error) {
		ms := logMatches(mem.text, regexp.MustCompile(`^par (\d+): (\d+) MiB log, (\d+) keys: heap peak growth ([\d.]+) MiB \(pool ([\d.]+) MiB\)$`))
		orc := logMatches(mem.text, regexp.MustCompile(`^oracle: heap peak growth ([\d.]+) MiB for a (\d+) MiB file \((\d+) keys\)$`))
		if len(ms) == 0 {
			return "", noResults("TestHeapStaysSmallOn512MiBLog")
		}
		t := newTable("reader", "log", "heap growth", "pool peak", "against the oracle's growth")
		var oracle float64
		if len(orc) > 0 {
			oracle = f64(orc[0][1])
		}
		for _, m := range ms {
			t.add("`recovery.Recover`, parallelism "+m[1], group(int64(f64(m[2])))+" MiB", mibs(f64(m[4])), mibs(f64(m[5])), pct(f64(m[4]), oracle))
		}
		if len(orc) > 0 {
			t.add("oracle (`os.ReadFile`, then the walk)", group(int64(f64(orc[0][2])))+" MiB", mibs(oracle), "–", "100 %")
		}
		return t.String() + "\n", nil
	})

	p.sub("The database's Preparer words (`TestOpenMemoryWithPreparedWords`)", "A database open of a log of 1-byte-key deletes (the worst case for the words the Preparer\nkeeps per record), 64 KiB reads, depth 6: the pool's peak against the bound with the Preparer's\nterm and against the bound without it.")
	p.measured([]step{memdb}, func() (string, error) {
		ms := logMatches(memdb.text, regexp.MustCompile(`^(\d+)-byte log: pool peak (\d+) bytes; bound (\d+) \(without the Preparer's words (\d+)\)$`))
		if len(ms) == 0 {
			return "", noResults("TestOpenMemoryWithPreparedWords")
		}
		t := newTable("log", "pool peak", "bound", "peak / bound", "bound without the words", "peak / that bound")
		for _, m := range ms {
			t.add(mib(f64(m[1])), mib(f64(m[2])), mib(f64(m[3])), pct(f64(m[2]), f64(m[3])), mib(f64(m[4])), pct(f64(m[2]), f64(m[4])))
		}
		return t.String() + "\n", nil
	})

	p.sub("A big value's commit (`TestBigValueCommitHoldsItOnce`)", "A commit of one large value: the bytes the commit allocated against the value's size (1.00x\nis one copy, the store's).")
	p.measured([]step{memdb}, func() (string, error) {
		ms := logMatches(memdb.text, regexp.MustCompile(`^a commit of a (\d+)-byte value allocated (\d+) bytes`))
		if len(ms) == 0 {
			return "", noResults("TestBigValueCommitHoldsItOnce")
		}
		t := newTable("value", "allocated", "allocated / value")
		for _, m := range ms {
			t.add(mib(f64(m[1])), group(int64(f64(m[2])))+" B", ratio(f64(m[2]), f64(m[1])))
		}
		return t.String() + "\n", nil
	})
}

// --- Measured elsewhere ---

func elsewhereSection(p *page, r *run) {
	p.end()
	p.printf("## Measured elsewhere\n\n")
	p.printf("- The pool's allocator (off the Go heap, the heap in huge pages, the plain heap) is a one-off\n" +
		"  comparison run by `scripts/pool-alloc.sh`; its numbers are recorded in docs/design.md's decision\n" +
		"  record, \"The pool's allocator\".\n")
	p.printf("- Scaling past this machine's %s cores is measured by `scripts/scale.sh` (`-cpu 1,2,4,8,16`) on a\n"+
		"  machine with 16 cores; this script does not run it.\n\n", r.machine["cores"])
}

// --- Streams, backups and restores ---

func streamSection(p *page, r *run) {
	p.section("Streams, backups and restores", "Recovery of a log that arrives as a stream, and the database's backup and restore.")
	p.sub("Verify from a pipe (`BenchmarkStream`)", "A goroutine copies the log of \"Recovery throughput\" from the page cache into an `os.Pipe`;\n"+
		"`recovery.RecoverStream` reads the other end into `recovery.Discard`. Baselines of the same run:\n"+
		"`pipe/raw-read` (the pipe read into a 1 MiB buffer, nothing else: the pipe's limit) and\n"+
		"`file/par=0` (`Recover` of the file at the default parallelism). The benchmark alternates its\n"+
		"variants in two rounds; medians are over rounds and runs.")
	s := r.step("stream")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := mergeRounds(parseBenches(s.text))
		const pre = "BenchmarkStream/size="
		sizes := keys(b, pre)
		if len(sizes) == 0 {
			return "", noResults("BenchmarkStream")
		}
		var out strings.Builder
		for _, size := range sizes {
			get := func(c string) (float64, int, bool) { return b.get(pre+size+"/"+c, "MB/s") }
			rawv, _, rawOK := get("pipe/raw-read")
			file, _, fileOK := get("file/par=0")
			p1, _, p1OK := get("pipe/par=1")
			t := newTable("reader", "MB/s", "of the pipe's raw read", "of the file's `Recover`", "against parallelism 1")
			var cnt counts
			for _, c := range []string{"file/par=0", "pipe/raw-read", "pipe/par=1", "pipe/par=0"} {
				v, n, ok := get(c)
				if !ok {
					continue
				}
				cnt.add(n)
				row := []string{c, num(v), "–", "–", "–"}
				if strings.HasPrefix(c, "pipe/par=") {
					if rawOK {
						row[2] = pct(v, rawv)
					}
					if fileOK {
						row[3] = pct(v, file)
					}
					if p1OK {
						row[4] = ratio(v, p1)
					}
				}
				if c == "pipe/raw-read" && fileOK {
					row[3] = pct(v, file)
				}
				t.add(row...)
			}
			fmt.Fprintf(&out, "%s records:\n\n%s\n%s\n\n", sizeLabel(size), t, cnt)
		}
		return out.String(), nil
	})

	p.sub("Backup and restore (`BenchmarkBackup`)", "A 256 MiB log of 4 KiB records in the page cache: `db.BackupFile` to a file (every record\n"+
		"verified, one read) and `db.Restore` from a stream (verified as it arrives, synced, renamed),\n"+
		"against a plain copy of the file (`io.Copy`, which is `copy_file_range` on Linux) and a copy\n"+
		"through user space in 1 MiB reads and writes. MB/s of the log; the variants alternate in two\n"+
		"rounds.")
	s = r.step("backup")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := mergeRounds(parseBenches(s.text))
		labels := []struct{ name, label string }{
			{"plain-copy", "plain copy (`io.Copy`)"},
			{"user-copy", "copy through user space, 1 MiB reads and writes"},
			{"backup", "`db.BackupFile` to a file"},
			{"restore-from-stream", "`db.Restore` from a stream"},
		}
		plain, _, plainOK := b.get("BenchmarkBackup/plain-copy", "MB/s")
		t := newTable("operation", "MB/s", "of a plain copy")
		var cnt counts
		for _, l := range labels {
			v, n, ok := b.get("BenchmarkBackup/"+l.name, "MB/s")
			if !ok {
				continue
			}
			cnt.add(n)
			share := "–"
			if plainOK {
				share = pct(v, plain)
			}
			t.add(l.label, num(v), share)
		}
		if len(t.rows) == 0 {
			return "", noResults("BenchmarkBackup")
		}
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})

	p.sub("Restore's memory (`TestRestoreMemoryIsFlatInStreamSize`)", "`db.Restore` of a generated stream of 4 KiB records over 16,384 keys at two stream lengths:\n"+
		"the heap's peak growth while restoring, against the shorter stream's, and then while opening the\n"+
		"restored database (which holds the live store). One run of the test.")
	s = r.step("restoremem")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		ms := logMatches(s.text, regexp.MustCompile(`^a (\d+) MiB stream: restore's heap peak ([\d.]+) MiB; Open's of the same database \((\d+) keys live\) ([\d.]+) MiB$`))
		if len(ms) == 0 {
			return "", noResults("TestRestoreMemoryIsFlatInStreamSize")
		}
		t := newTable("stream", "restore's heap peak", "against the shorter stream's", "open's heap peak, restored database")
		base := f64(ms[0][2])
		for _, m := range ms {
			t.add(group(int64(f64(m[1])))+" MiB", mibs(f64(m[2])), ratio(f64(m[2]), base), mibs(f64(m[4])))
		}
		return t.String() + "\n", nil
	})
}

// --- The database's open ---

func openSection(p *page, r *run) {
	p.section("The database's open", "How fast `db.Open` rebuilds the store from its log, and with how much memory, against\n"+
		"recovery alone of the same file in the same run. MB/s here is of the file.")
	p.sub("The demo's log (`BenchmarkOpenDemo`)", "Read-only `db.Open` of the log `walrec demo` builds (256 MiB of a small shop's transactions,\n"+
		"`internal/workload`), against `recovery.Recover` of the same file into `recovery.Discard`. Heap\n"+
		"is the peak heap growth during one Open (sampled); live is the keys and values the store holds.")
	s := r.step("opendemo")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		get := func(kind, par, unit string) (float64, int, bool) {
			return b.get("BenchmarkOpenDemo/"+kind+"/parallelism="+par, unit)
		}
		if _, _, ok := get("open", "1", "MB/s"); !ok {
			return "", noResults("BenchmarkOpenDemo")
		}
		t := newTable("", "parallelism 1", "parallelism 0 (default)", "parallelism 0 against 1")
		var cnt counts
		row := func(label, kind, unit string, f func(float64) string, vs bool) {
			a, n1, ok1 := get(kind, "1", unit)
			c, n0, ok0 := get(kind, "0", unit)
			cnt.add(n1)
			cnt.add(n0)
			cells := []string{label, "–", "–", "–"}
			if ok1 {
				cells[1] = f(a)
			}
			if ok0 {
				cells[2] = f(c)
			}
			if vs && ok1 && ok0 {
				cells[3] = ratio(c, a)
			}
			t.add(cells...)
		}
		row("Open, MB/s", "open", "MB/s", num, true)
		row("recovery alone, MB/s", "recover-only", "MB/s", num, true)
		share := []string{"Open as a share of recovery alone", "–", "–", "–"}
		heapOver := []string{"heap peak over live", "–", "–", "–"}
		for i, par := range []string{"1", "0"} {
			o, _, ok1 := get("open", par, "MB/s")
			ro, _, ok2 := get("recover-only", par, "MB/s")
			if ok1 && ok2 {
				share[i+1] = pct(o, ro)
			}
			h, _, ok1 := get("open", par, "heapMiB")
			l, _, ok2 := get("open", par, "liveMiB")
			if ok1 && ok2 {
				heapOver[i+1] = ratio(h, l)
			}
		}
		t.add(share...)
		row("Open's heap peak", "open", "heapMiB", mibs, false)
		row("live keys and values", "open", "liveMiB", mibs, false)
		t.add(heapOver...)
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})

	p.sub("Other logs (`BenchmarkOpen256MiB`, `BenchmarkOpenUniqueKeys`)", "Read-write `db.Open` of 256 MiB of records of 4 sets over 4,096 keys (the store stays\n"+
		"under 1 MiB while the log holds 1.2 million ops) against recovery alone of the same file, and of\n"+
		"64 MiB of the same records whose 300,000 keys are all distinct (every op inserts).")
	s = r.step("open")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		rows := []struct{ label, name string }{
			{"Open, 256 MiB over 4,096 keys, MB/s", "BenchmarkOpen256MiB/open/parallelism="},
			{"recovery alone, same log, MB/s", "BenchmarkOpen256MiB/recover-only/parallelism="},
			{"Open, 64 MiB of distinct keys, MB/s", "BenchmarkOpenUniqueKeys/parallelism="},
		}
		t := newTable("", "parallelism 1", "parallelism 0 (default)", "parallelism 0 against 1")
		var cnt counts
		got := map[string]float64{}
		for _, rw := range rows {
			cells := []string{rw.label, "–", "–", "–"}
			for i, par := range []string{"1", "0"} {
				if v, n, ok := b.get(rw.name+par, "MB/s"); ok {
					cnt.add(n)
					cells[i+1] = num(v)
					got[rw.name+par] = v
				}
			}
			if a, ok := got[rw.name+"1"]; ok {
				if c, ok := got[rw.name+"0"]; ok {
					cells[3] = ratio(c, a)
				}
			}
			t.add(cells...)
			if rw.label == rows[1].label {
				share := []string{"Open as a share of recovery alone", "–", "–", "–"}
				for i, par := range []string{"1", "0"} {
					o, ok1 := got[rows[0].name+par]
					ro, ok2 := got[rows[1].name+par]
					if ok1 && ok2 {
						share[i+1] = pct(o, ro)
					}
				}
				t.add(share...)
			}
		}
		if cnt.hi == 0 {
			return "", noResults("BenchmarkOpen256MiB or BenchmarkOpenUniqueKeys")
		}
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})

	p.sub("`walrec demo`", "`walrec demo` as a fresh process: it builds the 256 MiB log, then opens it read-only, first\n"+
		"with recovery alone on a quarter of the log and on all of it, then with the database's open,\n"+
		"sequential and parallel. Read buffers are recovery's pool peak, heap peak the heap's growth\n"+
		"during the open, heap kept what the open store still holds after it. The database's rows are\n"+
		"compared with recovery alone at the same parallelism.")
	s = r.step("demo")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		re := regexp.MustCompile(`^\s+((?:recovery alone|database open), (?:sequential|parallel \(\d+\)))\s+([\d.]+) MiB\s+([\d,]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+) MiB\s+([\d.]+) MiB\s+(-|[\d.]+ MiB)\s*$`)
		type agg struct{ mbps, buf, heap, kept []float64 }
		var order []string
		rows := map[string]*agg{}
		for _, line := range strings.Split(s.text, "\n") {
			m := re.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			key := m[1] + ", " + m[2] + " MiB"
			a := rows[key]
			if a == nil {
				a = &agg{}
				rows[key] = a
				order = append(order, key)
			}
			a.mbps = append(a.mbps, f64(m[5]))
			a.buf = append(a.buf, f64(m[6]))
			a.heap = append(a.heap, f64(m[7]))
			if m[8] != "-" {
				a.kept = append(a.kept, f64(strings.TrimSuffix(m[8], " MiB")))
			}
		}
		if len(order) == 0 {
			return "", noResults("walrec demo")
		}
		t := newTable("read-only open of the log, log read", "MB/s", "against recovery alone", "read buffers", "heap peak", "heap kept")
		var cnt counts
		for _, k := range order {
			a := rows[k]
			cnt.add(len(a.mbps))
			row := []string{k, num(median(a.mbps)), "–", mibs(median(a.buf)), mibs(median(a.heap)), "–"}
			if len(a.kept) > 0 {
				row[5] = mibs(median(a.kept))
			}
			if rest, ok := strings.CutPrefix(k, "database open, "); ok {
				if base := rows["recovery alone, "+rest]; base != nil {
					row[2] = ratio(median(a.mbps), median(base.mbps))
				}
			}
			t.add(row...)
		}
		out := t.String() + "\n" + strings.Replace(cnt.String(), "runs", "processes", 1) + "\n\n"
		if m := regexp.MustCompile(`which it keeps: ([\d,]+) keys, ([\d.]+) MiB of keys and values`).FindStringSubmatch(s.text); m != nil {
			out += fmt.Sprintf("The open store holds %s keys, %s MiB of keys and values.\n\n", m[1], m[2])
		}
		return out, nil
	})
}

// --- Group commit ---

func commitSection(p *page, r *run) {
	p.section("Group commit (`BenchmarkConcurrentCommits`)", "Commits of one 16-byte key and a 100-byte value from N goroutines at once, on the OS\n"+
		"filesystem in a temporary directory: `serial` is `db.WithoutGroupCommit()` (one append and one\n"+
		"fdatasync per commit), `group` the default, in the same run. Commits per second of all writers\n"+
		"together.")
	s := r.step("commits")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		writers := keys(b, "BenchmarkConcurrentCommits/serial/")
		for _, w := range keys(b, "BenchmarkConcurrentCommits/group/") {
			if !slices.Contains(writers, w) {
				writers = append(writers, w)
			}
		}
		if len(writers) == 0 {
			return "", noResults("BenchmarkConcurrentCommits")
		}
		t := newTable("writers", "serial, commits/s", "group, commits/s", "group against serial")
		var cnt counts
		for _, w := range writers {
			ser, n1, ok1 := b.get("BenchmarkConcurrentCommits/serial/"+w, "commits/s")
			grp, n2, ok2 := b.get("BenchmarkConcurrentCommits/group/"+w, "commits/s")
			cnt.add(n1)
			cnt.add(n2)
			row := []string{strings.TrimPrefix(w, "writers="), "–", "–", "–"}
			if ok1 {
				row[1] = num(ser)
			}
			if ok2 {
				row[2] = num(grp)
			}
			if ok1 && ok2 {
				row[3] = ratio(grp, ser)
			}
			t.add(row...)
		}
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})
}

// --- Compaction ---

func compactSection(p *page, r *run) {
	p.section("Compaction (`BenchmarkCompactDemo`)", "192 MiB of the demo's workload: a read-only Open before compacting, `Compact` itself (the\n"+
		"snapshot written, fsynced, renamed, the directory fsynced; MB/s of the old log), and a read-only\n"+
		"Open of the compacted log, in one run. The last column compares each Open's time with the\n"+
		"Open before compacting.")
	s := r.step("compact")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		b := parseBenches(s.text)
		const pre = "BenchmarkCompactDemo/"
		before, _, okBefore := b.get(pre+"open-before", "ns/op")
		t := newTable("step", "time", "MB/s of the file it reads", "file", "speed against the Open before")
		var cnt counts
		for _, st := range []struct{ name, label, size string }{
			{"open-before", "read-only Open before", "fileMiB"},
			{"compact", "`Compact`", "afterMiB"},
			{"open-after", "read-only Open after", "fileMiB"},
		} {
			ns, n, ok := b.get(pre+st.name, "ns/op")
			if !ok {
				continue
			}
			cnt.add(n)
			mbs, _, _ := b.get(pre+st.name, "MB/s")
			size, _, _ := b.get(pre+st.name, st.size)
			file := mibs(size)
			if st.name == "compact" {
				file = "written: " + mibs(size)
			}
			against := "–"
			if okBefore && st.name != "compact" {
				against = ratio(before, ns)
			}
			t.add(st.label, fmt.Sprintf("%.0f ms", ns/1e6), num(mbs), file, against)
		}
		if len(t.rows) == 0 {
			return "", noResults("BenchmarkCompactDemo")
		}
		return fmt.Sprintf("%s\n%s\n\n", t, cnt), nil
	})
}

// --- Peers ---

type peersReport struct {
	Modules map[string]string `json:"modules"`
	Results []struct {
		Size     int       `json:"payload_size"`
		Payload  float64   `json:"payload_bytes"`
		System   string    `json:"system"`
		Label    string    `json:"label"`
		Par      int       `json:"parallelism"`
		Mode     string    `json:"mode"`
		Runs     []float64 `json:"run_seconds"`
		RunRSS   []float64 `json:"run_peak_rss_kib"`
		ErrorMsg string    `json:"error"`
	} `json:"results"`
}

func peersSection(p *page, r *run) {
	p.section("Against the logs people use instead (`benchmarks/peers`)", "A separate module (so pebble and etcd stay out of the library's dependencies) that writes one\n"+
		"workload through each system and replays each log in a fresh process; method and columns:\n"+
		"benchmarks/peers/README.md. `discard` hands every op to a sink that digests it; `map` also copies\n"+
		"every value into a Go map. Reference rows: the raw read (1 MiB reads, no parsing), a reader that\n"+
		"checks nothing (read on one goroutine, sink on another), and the sink alone with the payloads\n"+
		"already in memory (no replay can beat it). Each cell is the median payload MB/s of the replays\n"+
		"and, for every other row, this project's best setting in that column (bold) over it. This run\n"+
		"writes its results.json to the run's output directory, not to benchmarks/peers.")
	s := r.step("peers")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		raw, err := os.ReadFile(filepath.Join(r.dir, "peers", "results.json"))
		if err != nil {
			return "", errors.New("no peers/results.json in the run's outputs")
		}
		var rep peersReport
		if err := json.Unmarshal(raw, &rep); err != nil {
			return "", fmt.Errorf("peers/results.json: %v", err)
		}
		type col struct {
			size int
			mode string
		}
		type rowKey struct {
			system string
			par    int
		}
		var cols []col
		var rows []rowKey
		labels := map[rowKey]string{}
		mbps := map[rowKey]map[col]float64{}
		rss := map[rowKey]map[col]float64{}
		failed := map[rowKey]map[col]bool{}
		best := map[col]float64{}
		var cnt counts
		for _, x := range rep.Results {
			c, k := col{x.Size, x.Mode}, rowKey{x.System, x.Par}
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
			if _, ok := mbps[k]; !ok {
				rows = append(rows, k)
				mbps[k], rss[k], failed[k] = map[col]float64{}, map[col]float64{}, map[col]bool{}
				labels[k] = x.Label
				if x.System == "recovery" {
					labels[k] = fmt.Sprintf("%s, parallelism %d", x.Label, x.Par)
				}
			}
			if x.ErrorMsg != "" || len(x.Runs) == 0 || median(x.Runs) <= 0 {
				failed[k][c] = true
				continue
			}
			cnt.add(len(x.Runs))
			v := x.Payload / 1e6 / median(x.Runs)
			mbps[k][c] = v
			if len(x.RunRSS) > 0 {
				rss[k][c] = median(x.RunRSS) / 1024
			}
			if x.System == "recovery" && v > best[c] {
				best[c] = v
			}
		}
		if len(cols) == 0 {
			return "", noResults("peers")
		}
		slices.SortStableFunc(cols, func(a, b col) int {
			if a.size != b.size {
				return a.size - b.size
			}
			return strings.Compare(a.mode, b.mode)
		})
		head := []string{"system"}
		for _, c := range cols {
			head = append(head, fmt.Sprintf("%s %s", bytesLabel(c.size), c.mode))
		}
		t, tr := newTable(head...), newTable(head...)
		for _, k := range rows {
			row, rrow := []string{labels[k]}, []string{labels[k]}
			for _, c := range cols {
				v, ok := mbps[k][c]
				switch {
				case failed[k][c]:
					row, rrow = append(row, "failed"), append(rrow, "failed")
					continue
				case !ok:
					row, rrow = append(row, "–"), append(rrow, "–")
					continue
				}
				cell := num(v)
				if k.system == "recovery" {
					if v == best[c] {
						cell = "**" + cell + "**"
					}
				} else if best[c] > 0 {
					cell += " (" + ratio(best[c], v) + ")"
				}
				row = append(row, cell)
				rrow = append(rrow, group(int64(rss[k][c]+0.5))+" MiB")
			}
			t.add(row...)
			tr.add(rrow...)
		}
		out := fmt.Sprintf("MB/s (this project's best over the row):\n\n%s\n%s\n\n", t, strings.Replace(cnt.String(), "runs", "replays", 1))
		out += fmt.Sprintf("Peak RSS of the replaying process (`VmHWM`), median:\n\n%s\n", tr)
		var mods []string
		for _, m := range []struct{ path, name string }{
			{"github.com/cockroachdb/pebble", "pebble"}, {"go.etcd.io/etcd/server/v3", "etcd server"}, {"github.com/tidwall/wal", "tidwall/wal"},
		} {
			if v := rep.Modules[m.path]; v != "" {
				mods = append(mods, m.name+" "+v)
			}
		}
		if len(mods) > 0 {
			out += "Versions: " + strings.Join(mods, ", ") + ".\n\n"
		}
		return out, nil
	})
}

func bytesLabel(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// --- GC pacing ---

func gcSection(p *page, r *run) {
	p.section("Garbage-collection pacing (`scripts/gc-pacing.sh`)", "Fresh replay processes of the peers' map mode (an applier that allocates a copy of every\n"+
		"value): this project at parallelism 1 and 2 and pebble's record reader, each at `GOGC=100` (Go's\n"+
		"default) and at `GOGC=200`, in alternating rounds, on the peers' logs of 256 B and 4 KiB records.\n"+
		"How often the program collects decides what parallelism gains for such an applier. Medians of\n"+
		"every round's MB/s, recomputed from the script's list of runs.")
	s := r.step("gcpacing")
	p.commands(s)
	p.measured([]step{s}, func() (string, error) {
		re := regexp.MustCompile(`^\s+(\d+) (\d+) (p1|p2|pebble)((?: \d+)+)\s*$`)
		type key struct{ size, gogc, label string }
		vals := map[key][]float64{}
		var confs [][2]string
		for _, line := range strings.Split(s.text, "\n") {
			m := re.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			for _, f := range strings.Fields(m[4]) {
				vals[key{m[1], m[2], m[3]}] = append(vals[key{m[1], m[2], m[3]}], f64(f))
			}
			c := [2]string{m[1], m[2]}
			if !slices.Contains(confs, c) {
				confs = append(confs, c)
			}
		}
		if len(confs) == 0 {
			return "", noResults("gc-pacing")
		}
		t := newTable("record", "GOGC", "parallelism 1", "parallelism 2", "pebble", "2 against 1", "best of 1 and 2 against pebble")
		var cnt counts
		for _, c := range confs {
			size, _ := strconv.Atoi(c[0])
			row := []string{bytesLabel(size), c[1]}
			med := map[string]float64{}
			for _, l := range []string{"p1", "p2", "pebble"} {
				vs := vals[key{c[0], c[1], l}]
				cnt.add(len(vs))
				if len(vs) == 0 {
					row = append(row, "–")
					continue
				}
				med[l] = median(vs)
				row = append(row, num(med[l]))
			}
			row = append(row, ratio(med["p2"], med["p1"]), ratio(max(med["p1"], med["p2"]), med["pebble"]))
			if med["p1"] == 0 || med["p2"] == 0 {
				row[5] = "–"
			}
			t.add(row...)
		}
		return fmt.Sprintf("%s\n%s\n\n", t, strings.Replace(cnt.String(), "runs", "rounds", 1)), nil
	})
}
