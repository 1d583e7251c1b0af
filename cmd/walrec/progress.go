package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: progress bars are drawn only there, so piped
// and captured output stays plain. Tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && f.Fd() != ^uintptr(0) && term.IsTerminal(int(f.Fd()))
}

// progressDelay is how long work runs before it gets a bar: a quick command never flashes one.
var progressDelay = 300 * time.Millisecond

// Progress where there is no terminal: a line on stderr every progressEvery[mode], the first
// once a step has run that long, so a short run's stderr stays empty and a long one (an
// hour over a 100 GiB log, or a silent search through a zero tail) shows it is alive: the
// line comes from a clock, not from the work, and says how long the step has run even when
// the offset has not moved. progressNow is the clock; tests replace both.
var (
	progressEvery = map[string]time.Duration{"plain": 10 * time.Second, "json": 2 * time.Second}
	progressNow   = time.Now
)

// Progress modes (--progress).
const (
	progAuto  = "auto"  // a bar on a terminal; elsewhere plain lines, once a step is long
	progBar   = "bar"   // a bar, terminal or not
	progPlain = "plain" // a line every 10 s
	progJSON  = "json"  // a JSON line every 2 s
	progNone  = "none"
)

// progressFlag is --progress.
type progressFlag string

func (p *progressFlag) String() string { return string(*p) }

func (p *progressFlag) Set(v string) error {
	switch v {
	case progAuto, progBar, progPlain, progJSON, progNone:
		*p = progressFlag(v)
		return nil
	}
	return fmt.Errorf("unknown progress mode %q (want auto, bar, plain, json or none)", v)
}

// progress is the progress of one step on stderr: a byte-count bar (on a terminal, once the
// work has taken longer than progressDelay), or lines, plain or JSON. A nil *progress does
// nothing.
type progress struct {
	w    io.Writer
	mode string
	cmd  string // the command, for lines: "verify"
	desc string // the step: "verify", "parallelism 2", "build"
	file string
	// lines
	every time.Duration
	stop  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	start    time.Time
	last     time.Time // when the last line was written (start before the first)
	n, total int64
	bar      *progressbar.ProgressBar
}

// newProgress starts the progress of a step in mode (not auto, not none).
func newProgress(stderr io.Writer, mode, cmd, desc, file string) *progress {
	p := &progress{w: stderr, mode: mode, cmd: cmd, desc: desc, file: file}
	if mode == progBar {
		p.start = time.Now()
		return p
	}
	p.every = progressEvery[mode]
	p.start = progressNow()
	p.last = p.start
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.line(progressNow())
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// set reports n of total bytes done. It is safe to call from any goroutine (recovery calls
// it from its applier).
func (p *progress) set(n, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n, p.total = n, total
	if p.mode != progBar {
		p.line(progressNow())
		return
	}
	if p.bar == nil {
		// Made on the first report, so its clock and rate start with the work; drawn only
		// once the work has taken longer than progressDelay.
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(&gatedWriter{w: p.w, open: p.start.Add(progressDelay)}),
			progressbar.OptionSetDescription(p.desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetPredictTime(true),
		)
	}
	p.bar.Set64(n)
}

// progressLine is a --progress json line.
type progressLine struct {
	jsonHead
	File    string  `json:"file"`
	FileHex *string `json:"file_hex"`
	Step    string  `json:"step"`
	Offset  int64   `json:"offset"`
	Size    int64   `json:"size"`
	Elapsed float64 `json:"elapsed_seconds"`
}

// line writes a line when the last one is every old (p.mu held).
func (p *progress) line(now time.Time) {
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	if p.mode == progJSON {
		writeJSON(p.w, progressLine{head(p.cmd, "progress"), p.file, nameHex(&p.file), p.desc, p.n, p.total, el.Seconds()})
		return
	}
	step := ""
	if p.desc != p.cmd {
		step = " (" + p.desc + ")"
	}
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" (%d%%)", p.n*100/p.total)
	}
	fmt.Fprintf(p.w, "walrec %s %s%s: %s of %s%s after %s\n", p.cmd, quoteName(p.file), step, mib(p.n), mib(p.total), pct, el.Round(time.Second))
}

// gatedWriter drops what is written before open: a bar for quick work never shows.
type gatedWriter struct {
	w    io.Writer
	open time.Time
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if time.Now().Before(g.open) {
		return len(p), nil
	}
	return g.w.Write(p)
}

// callback adapts set to recovery.WithProgress.
func (p *progress) callback() func(applied, total int64) {
	if p == nil {
		return nil
	}
	return p.set
}

// done ends the step: the bar is removed, if one was drawn; lines stop.
func (p *progress) done() {
	if p == nil {
		return
	}
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.stop = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish() // OptionClearOnFinish: the line is wiped
		p.bar = nil
	}
}

// both chains two progress callbacks.
func both(a, b func(applied, total int64)) func(applied, total int64) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(x, y int64) { a(x, y); b(x, y) }
}
