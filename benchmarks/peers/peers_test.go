package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamwal/recovery/format"
	"go.uber.org/goleak"
)

// Every system's writer and reader round-trip the same 100 records: same count, same bytes,
// same order-sensitive digest as the workload itself, and the same map.
func TestRoundTrip(t *testing.T) {
	for _, size := range []int{MinPayload, 256, 4 << 10, 64<<10 + 3} {
		w := Workload{Size: size, Records: 100, Keys: 7}
		for _, mode := range []Mode{Discard, Map} {
			want := w.Expected(mode)
			dir := t.TempDir()
			for _, sys := range systems {
				path := filepath.Join(dir, sys.Log)
				if sys.Write != nil {
					if err := sys.Write(path, w); err != nil {
						t.Fatalf("%s: write %d B: %v", sys.Name, size, err)
					}
				}
			}
			// The split reader (a reference, not a system) reads this project's log.
			got := NewSink(mode)
			if err := splitRead(filepath.Join(dir, "recovery.wal"), got); err != nil {
				t.Fatalf("split: replay %d B: %v", size, err)
			}
			if err := want.Same(got); err != nil {
				t.Errorf("split, %d B, %s: %v", size, mode, err)
			}
			for _, sys := range systems {
				for _, par := range []int{1, 2, 4} {
					if par > 1 && !sys.Parallel {
						continue
					}
					got := NewSink(mode)
					if _, err := sys.Replay(filepath.Join(dir, sys.Log), got, par); err != nil {
						t.Fatalf("%s p=%d: replay %d B: %v", sys.Name, par, size, err)
					}
					if err := want.Same(got); err != nil {
						t.Errorf("%s p=%d, %d B, %s: %v", sys.Name, par, size, mode, err)
					}
					if mode == Map && got.MapLen() != 7 {
						t.Errorf("%s: map holds %d keys, want 7", sys.Name, got.MapLen())
					}
				}
			}
		}
	}
}

func TestPayloadsDiffer(t *testing.T) {
	w := Workload{Size: 256, Records: 3, Keys: 1024}
	a, b := w.Payload(nil, 1), w.Payload(nil, 2)
	if len(a) != 256 || len(b) != 256 || string(a[opHeader+8:]) == string(b[opHeader+8:]) {
		t.Fatalf("payloads: %d and %d bytes, random parts equal: %v", len(a), len(b), string(a[opHeader+8:]) == string(b[opHeader+8:]))
	}
}

// The reports render from a synthetic result set, and the SVG is well-formed XML.
func TestRender(t *testing.T) {
	rep := &Report{Command: "go run .", Runs: 3, Keys: 1024, Machine: describeMachine(), Modules: moduleVersions()}
	for _, size := range []int{256, 4096} {
		add := func(sys, label string, par int, mode Mode, mbps float64) {
			rep.Results = append(rep.Results, &Result{Size: size, Records: 10, PayloadBytes: int64(10 * size),
				System: sys, Label: label, Parallelism: par, Mode: mode, Seconds: float64(10*size) / 1e6 / mbps, MBps: mbps, RecPerSec: 10, PeakRSSKiB: 20 << 10})
		}
		add("rawread", "raw", 0, Discard, 5000)
		add("split", "split", 0, Discard, 4500)
		add("split", "split", 0, Map, 2500)
		for _, mode := range []Mode{Discard, Map} {
			for _, p := range []int{1, 2, 4} {
				add("recovery", "this project", p, mode, float64(1000*p))
			}
			add("pebble", "pebble record", 0, mode, 1500)
			add("etcd", "etcd", 0, mode, 100)
		}
	}
	md := renderMarkdown(rep)
	if !strings.Contains(md, "| pebble record |") || !strings.Contains(md, "**4000**") || !strings.Contains(md, "| _reference: split_ |") {
		t.Errorf("markdown:\n%s", md)
	}
	d := xml.NewDecoder(strings.NewReader(renderSVG(rep)))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg: %v", err)
		}
	}
}

// A log the split reader cannot cut (a record longer than its read) is an error, not a hang.
func TestSplitRefusesWhatItCannotCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.wal")
	log := format.AppendRecord(append([]byte(nil), format.FileHeader[:]...), format.LayoutV1, make([]byte, 2<<20))
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := splitRead(path, NewSink(Discard)); err == nil || !strings.Contains(err.Error(), "no whole record") {
		t.Fatalf("split of a 2 MiB record: %v", err)
	}
}

// A sink that panics (here on a payload of two ops) leaves no reader behind: the panic reaches
// the caller after the reader has stopped, and nothing writes into the buffers it unmaps.
func TestSplitPanicLeavesNoReader(t *testing.T) {
	defer goleak.VerifyNone(t)
	path := filepath.Join(t.TempDir(), "two-ops.wal")
	log := append([]byte(nil), format.FileHeader[:]...)
	for range 12000 { // 7.5 MB: more than the four buffers hold, so the reader waits for one back
		p := format.AppendSet(nil, []byte("12345678"), make([]byte, 300))
		p = format.AppendSet(p, []byte("12345678"), make([]byte, 300))
		log = format.AppendRecord(log, format.LayoutV1, p)
	}
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "want 1") {
			t.Fatalf("recovered %v, want the sink's panic", r)
		}
	}()
	_ = splitRead(path, NewSink(Discard))
}
