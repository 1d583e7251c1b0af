// Package heapsample measures how far the Go heap grows above where it stood when sampling
// began: the peak of the heap's object bytes (live and not yet swept, so an honest upper bound
// on what the program held), read from runtime/metrics by one goroutine every interval.
// The tests' memory bounds and walrec's demo and bench report it.
package heapsample

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Objects is the heap's object bytes now.
func Objects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Sampler samples until Growth is called.
type Sampler struct {
	Base uint64 // heap object bytes after the GC that started sampling
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// Start collects garbage, takes the baseline and starts sampling every interval.
func Start(interval time.Duration) *Sampler {
	runtime.GC()
	h := &Sampler{Base: Objects(), stop: make(chan struct{}), done: make(chan struct{})}
	h.peak.Store(h.Base)
	go func() {
		defer close(h.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.Sample()
			}
		}
	}()
	return h
}

// Sample takes one sample now (e.g. from a progress callback, so short peaks between ticks count).
func (h *Sampler) Sample() {
	v := Objects()
	for {
		p := h.peak.Load()
		if v <= p || h.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// Growth stops sampling (its goroutine has exited when it returns) and returns the peak growth
// over the baseline, in bytes. Call it once.
func (h *Sampler) Growth() int64 {
	close(h.stop)
	<-h.done
	h.Sample()
	return int64(h.peak.Load() - h.Base)
}
