package main

import (
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

// progress is a byte-count progress bar on stderr, drawn only when stderr is a terminal and
// only once the work has taken longer than progressDelay. A nil *progress does nothing.
type progress struct {
	w     io.Writer
	desc  string
	start time.Time

	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newProgress(stderr io.Writer, desc string) *progress {
	if !isTerminal(stderr) {
		return nil
	}
	return &progress{w: stderr, desc: desc, start: time.Now()}
}

// set reports n of total bytes done. It is safe to call from any goroutine (recovery calls
// it from its applier).
func (p *progress) set(n, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
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

// done removes the bar, if one was drawn.
func (p *progress) done() {
	if p == nil {
		return
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
