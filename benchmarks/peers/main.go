// Command peers compares this project's streaming log recovery against other Go write-ahead
// logs on one workload. See README.md.
//
//	go run .                 # the full run: writes results.md, results.json, results.svg here
//	go run . -quick          # ~64 MiB per record size, one run each: a smoke test
//	go run . replay ...      # (internal) one replay in this process; the runner re-execs itself
//	go run . render          # redraw results.md and results.svg from results.json
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func main() {
	args := os.Args[1:]
	cmd := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "all", "run":
		err = runAll(args)
	case "replay":
		err = replayMain(args)
	case "render":
		err = renderMain(args)
	default:
		err = fmt.Errorf("unknown command %q (want all, replay or render)", cmd)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "peers:", err)
		}
		os.Exit(1)
	}
}

// childReport is what a replay child prints, as one JSON line on stdout.
type childReport struct {
	Seconds  float64        `json:"seconds"`
	Records  int64          `json:"records"`
	Bytes    int64          `json:"bytes"`
	Digest   string         `json:"digest"`
	MapKeys  int            `json:"map_keys"`
	VmHWMKiB int64          `json:"vmhwm_kib"`
	Extra    map[string]any `json:"extra,omitempty"`
}

// replayMain is the child: one replay of one log, timed from opening the log to the last record
// applied (and the log closed). The process is fresh, so its peak RSS is this replay's.
func replayMain(args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	system := fs.String("system", "", "system to replay (recovery, oracle, pebble, etcd, tidwall, rawread, split, sink, noop)")
	path := fs.String("path", "", "the log (file or directory)")
	par := fs.Int("par", 1, "parallelism (recovery only)")
	mode := fs.String("mode", string(Discard), "discard or map")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the replay to this file")
	size := fs.Int("size", 0, "payload size (sink only)")
	records := fs.Int("records", 0, "records (sink only)")
	keys := fs.Int("keys", 1024, "key space (sink only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m := Mode(*mode)
	if m != Discard && m != Map {
		return fmt.Errorf("unknown mode %q", *mode)
	}
	sink := NewSink(m)
	var rep childReport
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	switch *system {
	case "noop":
	case "rawread":
		n, err := rawRead(*path)
		if err != nil {
			return err
		}
		rep.Bytes = n
	case "split":
		if err := splitRead(*path, sink); err != nil {
			return err
		}
	case "sink":
		w := Workload{Size: *size, Records: *records, Keys: *keys}
		if err := w.check(); err != nil {
			return err
		}
		rep.Seconds = sinkAlone(w, sink)
	default:
		sys := systemByName(*system)
		if sys == nil {
			return fmt.Errorf("unknown system %q", *system)
		}
		extra, err := sys.Replay(*path, sink, *par)
		if err != nil {
			return fmt.Errorf("%s: %w", sys.Name, err)
		}
		rep.Extra = extra
	}
	if *system != "sink" {
		rep.Seconds = time.Since(start).Seconds()
	}
	if *system != "rawread" {
		rep.Records, rep.Bytes = sink.Records, sink.Bytes
	}
	rep.Digest = strconv.FormatUint(sink.Digest, 16)
	rep.MapKeys = sink.MapLen()
	rep.VmHWMKiB = vmHWM()
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// vmHWM reads this process's RSS high-water mark (KiB) from /proc/self/status, or -1.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// renderMain redraws results.md and results.svg from a results.json (after a change to the
// report code, without measuring again).
func renderMain(args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	dir := fs.String("dir", ".", "directory holding results.json; results.md and results.svg are written beside it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dir, "results.json"))
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "results.md"), []byte(renderMarkdown(&rep)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "results.svg"), []byte(renderSVG(&rep)), 0o644)
}

// sinkAlone is the ceiling of every replay: the workload's payloads, made in memory about 1 MiB
// at a time (untimed), fed to the sink (timed): no log, no read, no checksum, no framing. The
// sink is order-sensitive and single-threaded, so no replay into it can be faster than this.
// It returns the seconds spent in the sink.
func sinkAlone(w Workload, s *Sink) float64 {
	per := max(1, (1<<20)/w.Size)
	batch := make([]byte, 0, per*w.Size)
	var spent time.Duration
	for i := 0; i < w.Records; i += per {
		batch = batch[:0]
		n := min(per, w.Records-i)
		for j := range n {
			batch = w.Payload(batch, i+j)
		}
		t := time.Now()
		for j := range n {
			s.Payload(batch[j*w.Size : (j+1)*w.Size])
		}
		spent += time.Since(t)
	}
	return spent.Seconds()
}
