package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the runner's flags.
type config struct {
	sizes      []int   // payload bytes per record
	volumes    []int64 // payload bytes written per size (one per size)
	keys       int
	runs       int
	pars       []int
	modes      []Mode
	systems    []string
	dir        string
	out        string
	cpuprofile string
	keep       bool
	quick      bool
	command    string
}

// Result is one (record size, system, parallelism, mode) measurement: the best of its runs.
type Result struct {
	Size         int            `json:"payload_size"`
	Records      int            `json:"records"`
	PayloadBytes int64          `json:"payload_bytes"`
	LogBytes     int64          `json:"log_bytes"`
	System       string         `json:"system"`
	Label        string         `json:"label"`
	Parallelism  int            `json:"parallelism,omitempty"`
	Mode         Mode           `json:"mode"`
	Runs         []float64      `json:"run_seconds"`
	RunRSSKiB    []int64        `json:"run_peak_rss_kib"`
	Seconds      float64        `json:"best_seconds"`
	MBps         float64        `json:"mb_per_s"`
	RecPerSec    float64        `json:"records_per_s"`
	PeakRSSKiB   int64          `json:"peak_rss_kib"`  // of the best run: the child's VmHWM after the replay
	RUMaxRSSKiB  int64          `json:"ru_maxrss_kib"` // the same run's ru_maxrss (see README: includes the parent's RSS)
	Extra        map[string]any `json:"extra,omitempty"`
	Err          string         `json:"error,omitempty"`
}

// Report is everything results.json holds.
type Report struct {
	Command        string             `json:"command"`
	Date           string             `json:"date"`
	Machine        Machine            `json:"machine"`
	Modules        map[string]string  `json:"modules"`
	Runs           int                `json:"runs_per_measurement"`
	Keys           int                `json:"key_space"`
	BaselineRSSKiB int64              `json:"baseline_rss_kib"`
	WriteSeconds   map[string]float64 `json:"write_seconds"` // "size/system" -> seconds
	TotalSeconds   float64            `json:"total_seconds"`
	Results        []*Result          `json:"results"`
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if t, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = t, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	sizes := fs.String("sizes", "256,4KiB,64KiB", "payload sizes per record")
	volume := fs.String("volume", "256MiB,1GiB,1GiB", "payload bytes written per size: one value per size, or one for all")
	quick := fs.Bool("quick", false, "smoke run: 64 MiB per size, 1 run per measurement, results not written unless -out is given")
	keys := fs.Int("keys", 1024, "key space of the map mode (key = record number mod keys)")
	runs := fs.Int("runs", 5, "replays per measurement; the best (shortest) counts")
	pars := fs.String("par", "1,2,4", "parallelisms to replay this project at")
	modes := fs.String("modes", "discard,map", "replay modes")
	syss := fs.String("systems", "recovery,oracle,pebble,etcd,tidwall", "systems to run")
	dir := fs.String("dir", "", "parent directory of the temporary log directory (default: os.TempDir())")
	out := fs.String("out", "", "directory for results.md, results.json and results.svg (default: . ; with -quick: none)")
	cpuprofile := fs.String("cpuprofile", "", "directory: write a CPU profile of every replay's last run into it")
	keep := fs.Bool("keep", false, "keep the logs (and print where they are)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c := &config{keys: *keys, runs: *runs, dir: *dir, out: *out, cpuprofile: *cpuprofile, keep: *keep, quick: *quick}
	c.command = "go run ."
	if len(args) > 0 {
		c.command += " " + strings.Join(args, " ")
	}
	var err error
	sz, err := parseList(*sizes, parseBytes)
	if err != nil {
		return nil, err
	}
	for _, s := range sz {
		if s < MinPayload || s > 1<<30 {
			return nil, fmt.Errorf("payload size %d outside [%d, 1 GiB]", s, MinPayload)
		}
		c.sizes = append(c.sizes, int(s))
	}
	vol := *volume
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		if !set["volume"] {
			vol = "64MiB"
		}
		if !set["runs"] {
			c.runs = 1
		}
	}
	if c.out == "" && !c.quick {
		c.out = "."
	}
	if c.volumes, err = parseList(vol, parseBytes); err != nil {
		return nil, err
	}
	switch len(c.volumes) {
	case 1:
		for len(c.volumes) < len(c.sizes) {
			c.volumes = append(c.volumes, c.volumes[0])
		}
	case len(c.sizes):
	default:
		return nil, fmt.Errorf("-volume has %d values for %d sizes", len(c.volumes), len(c.sizes))
	}
	if c.pars, err = parseList(*pars, strconv.Atoi); err != nil {
		return nil, err
	}
	if c.modes, err = parseList(*modes, func(s string) (Mode, error) {
		if m := Mode(s); m == Discard || m == Map {
			return m, nil
		}
		return "", fmt.Errorf("unknown mode %q", s)
	}); err != nil {
		return nil, err
	}
	c.systems, _ = parseList(*syss, func(s string) (string, error) { return s, nil })
	for _, s := range c.systems {
		if systemByName(s) == nil {
			return nil, fmt.Errorf("unknown system %q", s)
		}
	}
	if c.runs < 1 || c.keys < 1 {
		return nil, fmt.Errorf("-runs and -keys must be >= 1")
	}
	return c, nil
}

// measurement is one configuration to replay.
type measurement struct {
	sys  *System // nil for a reference: ref says which
	ref  string  // "rawread", "split" or "sink"
	par  int
	mode Mode
	res  *Result
}

func (m *measurement) name() string {
	n := m.ref
	if m.sys != nil {
		n = m.sys.Name
	}
	if m.par > 0 {
		n += fmt.Sprintf("-p%d", m.par)
	}
	return n + "-" + string(m.mode)
}

func runAll(args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if c.cpuprofile != "" {
		if err := os.MkdirAll(c.cpuprofile, 0o755); err != nil {
			return err
		}
	}
	t0 := time.Now()
	rep := &Report{
		Command:      c.command,
		Date:         t0.UTC().Format(time.RFC3339),
		Machine:      describeMachine(),
		Modules:      moduleVersions(),
		Runs:         c.runs,
		Keys:         c.keys,
		WriteSeconds: map[string]float64{},
	}
	base, err := os.MkdirTemp(c.dir, "walpeers-")
	if err != nil {
		return err
	}
	if !c.keep {
		defer os.RemoveAll(base)
	}
	logf("logs under %s", base)

	// The binary's own floor: a child that replays nothing.
	if cr, _, err := runChild(exe, []string{"-system", "noop"}); err == nil {
		rep.BaselineRSSKiB = cr.VmHWMKiB
	} else {
		return fmt.Errorf("baseline child: %w", err)
	}

	for si, size := range c.sizes {
		w := Workload{Size: size, Records: int(c.volumes[si] / int64(size)), Keys: c.keys}
		if err := w.check(); err != nil {
			return err
		}
		dir := filepath.Join(base, fmt.Sprintf("size-%d", size))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		logf("payload %s: %d records, %s of payload", human(int64(size)), w.Records, human(w.PayloadBytes()))

		// Write every log once.
		written := map[string]bool{}
		var ms []*measurement
		needRecoveryLog := false
		for _, name := range c.systems {
			sys := systemByName(name)
			if sys.Write == nil {
				needRecoveryLog = true
			}
		}
		for _, sys := range systems {
			want := slices.Contains(c.systems, sys.Name) || (sys.Name == "recovery" && needRecoveryLog)
			if !want || sys.Write == nil || written[sys.Log] {
				continue
			}
			path := filepath.Join(dir, sys.Log)
			t := time.Now()
			if err := sys.Write(path, w); err != nil {
				return fmt.Errorf("%s: write: %w", sys.Name, err)
			}
			written[sys.Log] = true
			rep.WriteSeconds[fmt.Sprintf("%d/%s", size, sys.Name)] = time.Since(t).Seconds()
			n, _ := logBytes(path)
			logf("  wrote %-8s %s in %.1fs", sys.Name, human(n), time.Since(t).Seconds())
		}
		// Warm the page cache: read every log once before anything is timed.
		for l := range written {
			if err := warm(filepath.Join(dir, l)); err != nil {
				return err
			}
		}
		exp := w.Expected(Discard)

		newResult := func(sys *System, ref string, par int, mode Mode) *Result {
			r := &Result{Size: size, Records: w.Records, PayloadBytes: w.PayloadBytes(), Parallelism: par, Mode: mode}
			switch {
			case ref == "rawread":
				r.System, r.Label = "rawread", "raw read (1 MiB reads, no parsing)"
				r.LogBytes, _ = logBytes(filepath.Join(dir, "recovery.wal"))
			case ref == "split":
				r.System, r.Label = "split", "read on one goroutine, sink on another, no checksum"
				r.LogBytes, _ = logBytes(filepath.Join(dir, "recovery.wal"))
			case ref == "sink":
				r.System, r.Label = "sink", "the sink alone (payloads already in memory, no log)"
			default:
				r.System, r.Label = sys.Name, sys.Label
				r.LogBytes, _ = logBytes(filepath.Join(dir, sys.Log))
			}
			rep.Results = append(rep.Results, r)
			return r
		}
		if written["recovery.wal"] {
			ms = append(ms, &measurement{ref: "rawread", mode: Discard, res: newResult(nil, "rawread", 0, Discard)})
		}
		if written["recovery.wal"] { // reads split from the sink onto two goroutines, nothing checked
			for _, mode := range c.modes {
				ms = append(ms, &measurement{ref: "split", mode: mode, res: newResult(nil, "split", 0, mode)})
			}
		}
		for _, mode := range c.modes { // the ceiling of every replay into the sink
			ms = append(ms, &measurement{ref: "sink", mode: mode, res: newResult(nil, "sink", 0, mode)})
		}
		for _, mode := range c.modes {
			for _, name := range c.systems {
				sys := systemByName(name)
				if sys.Parallel {
					for _, p := range c.pars {
						ms = append(ms, &measurement{sys: sys, par: p, mode: mode, res: newResult(sys, "", p, mode)})
					}
				} else {
					ms = append(ms, &measurement{sys: sys, mode: mode, res: newResult(sys, "", 0, mode)})
				}
			}
		}

		// Rounds: every configuration once per round, so that a slow patch of the shared
		// machine is spread over all systems instead of landing on one.
		for round := range c.runs {
			for _, m := range ms {
				r := m.res
				if r.Err != "" {
					continue
				}
				cargs := []string{"-mode", string(m.mode)}
				switch {
				case m.ref == "rawread":
					cargs = append(cargs, "-system", "rawread", "-path", filepath.Join(dir, "recovery.wal"))
				case m.ref == "split":
					cargs = append(cargs, "-system", "split", "-path", filepath.Join(dir, "recovery.wal"))
				case m.ref == "sink":
					cargs = append(cargs, "-system", "sink", "-size", strconv.Itoa(w.Size), "-records", strconv.Itoa(w.Records), "-keys", strconv.Itoa(w.Keys))
				default:
					cargs = append(cargs, "-system", m.sys.Name, "-path", filepath.Join(dir, m.sys.Log), "-par", strconv.Itoa(max(m.par, 1)))
				}
				if c.cpuprofile != "" && round == c.runs-1 {
					cargs = append(cargs, "-cpuprofile", filepath.Join(c.cpuprofile, fmt.Sprintf("%d-%s.prof", size, m.name())))
				}
				cr, rss, err := runChild(exe, cargs)
				if err == nil && m.ref != "rawread" {
					err = checkReplay(cr, exp, m.mode, w)
				}
				if err != nil {
					r.Err = err.Error()
					logf("  %-22s FAILED: %v", m.name(), err)
					continue
				}
				r.Runs = append(r.Runs, cr.Seconds)
				r.RunRSSKiB = append(r.RunRSSKiB, cr.VmHWMKiB)
				if r.Seconds == 0 || cr.Seconds < r.Seconds {
					r.Seconds, r.PeakRSSKiB, r.RUMaxRSSKiB, r.Extra = cr.Seconds, cr.VmHWMKiB, rss, cr.Extra
					r.MBps = float64(r.PayloadBytes) / 1e6 / cr.Seconds
					if m.ref == "rawread" {
						r.MBps = float64(cr.Bytes) / 1e6 / cr.Seconds // the file's bytes, not payload
					}
					r.RecPerSec = float64(r.Records) / cr.Seconds
				}
				logf("  run %d %-22s %7.3fs %9.1f MB/s  peak RSS %s", round+1, m.name(), cr.Seconds,
					float64(r.PayloadBytes)/1e6/cr.Seconds, human(cr.VmHWMKiB<<10))
			}
		}
		if c.keep {
			logf("  kept %s", dir)
		} else if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	rep.TotalSeconds = time.Since(t0).Seconds()

	md := renderMarkdown(rep)
	fmt.Println(md)
	if c.out != "" {
		if err := os.MkdirAll(c.out, 0o755); err != nil {
			return err
		}
		js, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		files := map[string][]byte{
			"results.md":   []byte(md),
			"results.json": append(js, '\n'),
			"results.svg":  []byte(renderSVG(rep)),
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(c.out, name), b, 0o644); err != nil {
				return err
			}
		}
		logf("wrote results.md, results.json, results.svg in %s", c.out)
	}
	logf("total %.0fs", rep.TotalSeconds)
	return nil
}

func checkReplay(cr *childReport, exp *Sink, mode Mode, w Workload) error {
	got := &Sink{Records: cr.Records, Bytes: cr.Bytes}
	got.Digest, _ = strconv.ParseUint(cr.Digest, 16, 64)
	want := &Sink{Records: exp.Records, Bytes: exp.Bytes, Digest: exp.Digest}
	if err := want.Same(got); err != nil {
		return fmt.Errorf("replay differs from the workload: %w", err)
	}
	if wantKeys := min(w.Keys, w.Records); mode == Map && cr.MapKeys != wantKeys {
		return fmt.Errorf("map holds %d keys, want %d", cr.MapKeys, wantKeys)
	}
	return nil
}

// runChild re-execs this binary's replay command and returns its report and the child's
// ru_maxrss (KiB) from wait4. On Linux that number is not the child's own: Go starts children
// with vfork semantics (CLONE_VM), and the kernel folds the high-water mark of the mm the child
// had before exec (the parent's) into it, so it is at least the parent's RSS. The child's own
// VmHWM (childReport.VmHWMKiB, read from /proc/self/status after the replay) is what we report.
func runChild(exe string, args []string) (*childReport, int64, error) {
	cmd := exec.Command(exe, append([]string{"replay"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return nil, 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = int64(ru.Maxrss) // KiB on Linux
	}
	var cr childReport
	if err := json.Unmarshal(stdout.Bytes(), &cr); err != nil {
		return nil, 0, fmt.Errorf("child output %q: %w", stdout.String(), err)
	}
	return &cr, rss, nil
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
