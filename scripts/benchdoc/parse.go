package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// run is one measuring session's directory: machine.txt, times, and per step NAME.txt (its
// output), NAME.cmd (the command as run) and NAME.rc (its exit status).
type run struct {
	dir     string
	machine map[string]string
}

func loadRun(dir string) *run {
	r := &run{dir: dir, machine: map[string]string{}}
	if b, err := os.ReadFile(filepath.Join(dir, "machine.txt")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				r.machine[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return r
}

// step is one command's output. missing is why it cannot be used ("" if it can).
type step struct {
	name, cmd, text string
	missing         string
}

func (r *run) step(name string) step {
	s := step{name: name}
	if b, err := os.ReadFile(filepath.Join(r.dir, name+".cmd")); err == nil {
		s.cmd = strings.TrimSpace(string(b))
	}
	b, err := os.ReadFile(filepath.Join(r.dir, name+".txt"))
	if err != nil {
		s.missing = fmt.Sprintf("no output (%s.txt): the step did not run", name)
		return s
	}
	s.text = string(b)
	rc, err := os.ReadFile(filepath.Join(r.dir, name+".rc"))
	if err != nil {
		s.missing = "the step did not finish (no exit status recorded)"
		return s
	}
	if code := strings.TrimSpace(string(rc)); code != "0" {
		s.missing = fmt.Sprintf("the command exited with status %s", code)
		if line := failureLine(s.text); line != "" {
			s.missing += " (" + line + ")"
		}
	}
	return s
}

// failureLine is the line of a failed command's output that says most about why: the first
// test failure or panic, else the last non-empty line.
func failureLine(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	pick := ""
	for _, l := range lines {
		if strings.Contains(l, "--- FAIL") || strings.HasPrefix(strings.TrimSpace(l), "panic:") {
			pick = l
			break
		}
	}
	if pick == "" && len(lines) > 0 {
		pick = lines[len(lines)-1]
		// walrec --json ends with its report: its error says why.
		var rep struct{ Error string }
		if json.Unmarshal([]byte(pick), &rep) == nil && rep.Error != "" {
			pick = rep.Error
		}
	}
	pick = strings.TrimSpace(strings.NewReplacer("`", "'", "|", "/").Replace(pick))
	if len(pick) > 160 {
		pick = pick[:160] + "..."
	}
	return pick
}

// benches is a Go benchmark output: every value of every unit of every benchmark, in the order
// the benchmarks first appeared (the GOMAXPROCS suffix taken off the names).
type benches struct {
	order []string
	vals  map[string]map[string][]float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+(.+)$`)
var procsSuffix = regexp.MustCompile(`-\d+$`)

func parseBenches(text string) *benches {
	b := &benches{vals: map[string]map[string][]float64{}}
	for _, line := range strings.Split(text, "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(m[1], "")
		f := strings.Fields(m[3])
		if len(f) < 2 {
			continue
		}
		if b.vals[name] == nil {
			b.vals[name] = map[string][]float64{}
			b.order = append(b.order, name)
		}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.vals[name][f[i+1]] = append(b.vals[name][f[i+1]], v)
		}
	}
	return b
}

// get is the median of a benchmark's values of unit, and how many there were.
func (b *benches) get(name, unit string) (float64, int, bool) {
	vs := b.vals[name][unit]
	if len(vs) == 0 {
		return 0, 0, false
	}
	return median(vs), len(vs), true
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// testLogs are the t.Logf messages of a go test -v output, in order.
var logLine = regexp.MustCompile(`^\s+\w+\.go:\d+: (.*)$`)

func testLogs(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if m := logLine.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// counts says how many runs a table's medians are over.
type counts struct{ lo, hi int }

func (c *counts) add(n int) {
	if n == 0 {
		return
	}
	if c.lo == 0 || n < c.lo {
		c.lo = n
	}
	c.hi = max(c.hi, n)
}

func (c counts) String() string {
	switch {
	case c.hi == 0:
		return ""
	case c.lo == c.hi && c.hi == 1:
		return "One run of each (no median)."
	case c.lo == c.hi:
		return fmt.Sprintf("Each figure is the median of %d runs.", c.hi)
	default:
		return fmt.Sprintf("Each figure is the median of %d to %d runs.", c.lo, c.hi)
	}
}

// Formatting.

func num(v float64) string {
	switch {
	case v >= 100:
		return group(int64(v + 0.5))
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	r := a / b
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

func pct(a, b float64) string {
	if b == 0 {
		return "–"
	}
	if v := 100 * a / b; v < 9.95 {
		return fmt.Sprintf("%.1f %%", v)
	}
	return fmt.Sprintf("%.0f %%", 100*a/b)
}

// mib formats bytes in MiB; mibs formats a figure already in MiB (one decimal, thousands
// grouped).
func mib(bytes float64) string { return mibs(bytes / (1 << 20)) }

func mibs(v float64) string {
	whole, frac, _ := strings.Cut(strconv.FormatFloat(v, 'f', 1, 64), ".")
	n, _ := strconv.ParseInt(whole, 10, 64)
	return group(n) + "." + frac + " MiB"
}

// table is a markdown table; numeric columns are right-aligned.
type table struct {
	head  []string
	right []bool
	rows  [][]string
}

func newTable(head ...string) *table {
	t := &table{head: head, right: make([]bool, len(head))}
	for i := 1; i < len(head); i++ {
		t.right[i] = true
	}
	return t
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.head, " | ") + " |\n|")
	for _, r := range t.right {
		if r {
			b.WriteString(" --: |")
		} else {
			b.WriteString(" --- |")
		}
	}
	b.WriteString("\n")
	for _, row := range t.rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}
