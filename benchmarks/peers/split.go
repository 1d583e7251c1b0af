package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/streamwal/recovery/format"
)

// splitRead is a reference, not a system: the plain way to split a replay over two goroutines,
// with nothing checked. One goroutine reads this project's log with 1 MiB reads, cut at record
// boundaries (it walks the length fields and nothing else: no checksum, no validation); the
// replay's goroutine walks the records of each read and feeds them to the sink. Its buffers are
// like this project's pool: four of them, off the Go heap where the platform allows
// (splitBuffers), so the row differs from this project's parallelism 2 in the work it leaves
// out and in its shape, not in the program's garbage-collection pacing.
func splitRead(path string, s *Sink) error {
	const (
		readSize = 1 << 20
		depth    = 4
	)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	type chunk struct {
		b   []byte // the buffer, whole
		n   int    // whole records in b[:n]
		err error
	}
	free, full := make(chan []byte, depth), make(chan chunk, depth)
	bufs, release := splitBuffers(depth, readSize)
	defer release()
	for _, b := range bufs {
		free <- b
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	// However this function ends (a sink that panics too), the reader has stopped and nothing
	// reads into the buffers before release unmaps them: deferred after release, so run before.
	defer func() {
		halt()
		for range full {
		}
	}()
	go func() { // the reader; the replay's goroutine drains full until it is closed
		defer close(full)
		for off := int64(format.FileHeaderSize); off < st.Size(); {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := f.ReadAt(b, off)
			if err != nil && err != io.EOF {
				full <- chunk{err: err}
				return
			}
			end := 0
			for end+12 <= n {
				l := int(binary.BigEndian.Uint32(b[end:]))
				if l > n-end-12 {
					break
				}
				end += 12 + l
			}
			if end == 0 {
				full <- chunk{err: fmt.Errorf("split: no whole record in %d bytes at offset %d", n, off)}
				return
			}
			full <- chunk{b: b, n: end}
			off += int64(end)
		}
	}()
	var failed error
	for c := range full {
		if c.err != nil || failed != nil {
			if failed == nil {
				failed = c.err
				halt()
			}
			continue
		}
		for p := 0; p < c.n; {
			l := int(binary.BigEndian.Uint32(c.b[p:]))
			s.Payload(c.b[p+12 : p+12+l : p+12+l])
			p += 12 + l
		}
		free <- c.b
	}
	return failed
}

func heapBuffers(k, n int) [][]byte {
	var bufs [][]byte
	for range k {
		bufs = append(bufs, make([]byte, n))
	}
	return bufs
}
