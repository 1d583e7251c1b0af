package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/tests/oracle"
)

// benchLogMiB is the size of each benchmark log; BENCH_LOG_MIB overrides it. 256 MiB is
// large enough that the per-open costs (a fresh pool, fresh arena) are amortised as they are
// on a real log; at 64 MiB they showed as ~20% at 4 KiB records.
var benchLogMiB = func() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("BENCH_LOG_MIB"), &n); err == nil && n > 0 {
		return n
	}
	return 256
}()

type benchLog struct {
	path     string
	size     int64
	payload  int64 // payload bytes: what b.SetBytes reports, so MB/s is payload MB/s
	records  int
	recordSz int
}

var (
	benchDir  string
	benchOnce sync.Once
	benchLogs = map[int]*benchLog{}
)

// logFor writes (once) a v1 log of one-set transactions of recordSz-byte payloads over 1024
// keys, so a store applier's state stays small.
func logFor(b *testing.B, recordSz int) *benchLog {
	benchOnce.Do(func() {
		d, err := os.MkdirTemp("", "walbench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
	})
	if l, ok := benchLogs[recordSz]; ok {
		return l
	}
	l := &benchLog{path: filepath.Join(benchDir, fmt.Sprintf("log-%d.wal", recordSz)), recordSz: recordSz}
	f, err := os.Create(l.path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(format.FileHeader[:])
	l.size = format.FileHeaderSize
	rng := rand.New(rand.NewPCG(uint64(recordSz), 1))
	var rec []byte
	for l.size < int64(benchLogMiB)<<20 {
		p := testlog.SizedTx(rng, recordSz, 1024)
		rec = format.AppendRecord(rec[:0], format.LayoutV1, p)
		w.Write(rec)
		l.size += int64(len(rec))
		l.payload += int64(len(p))
		l.records++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	benchLogs[recordSz] = l
	return l
}

func openLog(b *testing.B, l *benchLog) (*os.File, recovery.File) {
	f, err := os.Open(l.path)
	if err != nil {
		b.Fatal(err)
	}
	rf, err := recovery.OSFile(f)
	if err != nil {
		b.Fatal(err)
	}
	return f, rf
}

// mapStore is the applier a caller with a plain Go map would write: values copied, and reused
// in place when a key is overwritten (one lookup, no allocation in the steady state).
type mapStore map[string]*[]byte

func (m mapStore) Apply(r recovery.Record) error {
	for it := r.Ops(); it.Next(); {
		op := it.Op()
		if op.Kind == format.OpDelete {
			delete(m, string(op.Key))
			continue
		}
		if p := m[string(op.Key)]; p != nil {
			*p = append((*p)[:0], op.Value...)
		} else {
			v := append([]byte(nil), op.Value...)
			m[string(op.Key)] = &v
		}
	}
	return nil
}

var sizes = []int{256, 4 << 10, 64 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// removeBenchLogs deletes the logs logFor wrote (hundreds of MiB in $TMPDIR); every benchmark
// that calls logFor defers it.
func removeBenchLogs() {
	if benchDir != "" {
		os.RemoveAll(benchDir)
		benchDir, benchOnce, benchLogs = "", sync.Once{}, map[int]*benchLog{}
	}
}

// BenchmarkRecover measures recovery of a page-cache-warm log against, in the same run, the
// raw read of the same file (pread into one reused 1 MiB buffer: the limit) and the whole-file
// oracle (the baseline). MB/s is payload MB/s.
func BenchmarkRecover(b *testing.B) {
	defer removeBenchLogs()
	for _, sz := range sizes {
		b.Run("size="+sizeName(sz), func(b *testing.B) {
			l := logFor(b, sz)
			b.Run("raw-pread", func(b *testing.B) {
				f, _ := openLog(b, l)
				defer f.Close()
				buf := make([]byte, 1<<20)
				b.SetBytes(l.payload)
				for b.Loop() {
					for off := int64(0); off < l.size; off += int64(len(buf)) {
						if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
							b.Fatal(err)
						}
					}
				}
			})
			for _, par := range []int{1, 2, 4, 8} {
				// The real store: the database's own Open (read-only) on the same file.
				b.Run(fmt.Sprintf("store/par=%d", par), func(b *testing.B) {
					b.SetBytes(l.payload)
					for b.Loop() {
						d, err := db.Open(l.path, db.ReadOnly(), db.WithRecovery(recovery.WithParallelism(par)))
						if err != nil {
							b.Fatal(err)
						}
						if d.Recovery().Records != int64(l.records) {
							b.Fatalf("store replayed %d records, want %d", d.Recovery().Records, l.records)
						}
						d.Close()
					}
				})
			}
			for _, app := range []string{"discard", "map"} {
				b.Run("oracle/"+app, func(b *testing.B) {
					b.SetBytes(l.payload)
					for b.Loop() {
						data, err := os.ReadFile(l.path)
						if err != nil {
							b.Fatal(err)
						}
						var o oracle.Outcome
						if app == "map" {
							o, _ = oracle.State(data, oracle.Options{})
						} else {
							o = oracle.Recover(data, oracle.Options{}, nil)
						}
						if o.Records != int64(l.records) {
							b.Fatalf("oracle replayed %d records, want %d", o.Records, l.records)
						}
					}
				})
				for _, par := range []int{1, 2, 4, 8, 0} { // 0: the default, GOMAXPROCS (-cpu)
					b.Run(fmt.Sprintf("%s/par=%d", app, par), func(b *testing.B) {
						f, rf := openLog(b, l)
						defer f.Close()
						b.SetBytes(l.payload)
						var peak int64
						for b.Loop() {
							var a recovery.Applier = recovery.Discard
							if app == "map" {
								a = mapStore{}
							}
							res, err := recovery.Recover(context.Background(), rf, a, recovery.WithParallelism(par), recovery.ReadOnly())
							if err != nil || res.Records != int64(l.records) {
								b.Fatalf("%v %+v", err, res)
							}
							peak = res.PeakBuffered
						}
						b.ReportMetric(float64(peak)/(1<<20), "poolMiB")
					})
				}
			}
		})
	}
}

// BenchmarkStream measures recovery of a log read from a pipe (an os.Pipe that a goroutine
// fills from the file, as "cat log | walrec verify -" does) at parallelism 1 and the default,
// against Recover of the file at the default, alternated in one run. Records are discarded;
// MB/s is payload MB/s.
func BenchmarkStream(b *testing.B) {
	defer removeBenchLogs()
	for _, sz := range []int{256, 4 << 10} {
		b.Run("size="+sizeName(sz), func(b *testing.B) {
			l := logFor(b, sz)
			for _, round := range []string{"a", "b"} {
				b.Run("file/par=0/round="+round, func(b *testing.B) {
					f, rf := openLog(b, l)
					defer f.Close()
					b.SetBytes(l.payload)
					for b.Loop() {
						res, err := recovery.Recover(context.Background(), rf, recovery.Discard, recovery.ReadOnly())
						if err != nil || res.Records != int64(l.records) {
							b.Fatalf("%v %+v", err, res)
						}
					}
				})
				for _, par := range []int{-1, 1, 0} { // -1: the pipe read into a 1 MiB buffer, nothing else (the limit)
					name := fmt.Sprintf("pipe/par=%d/round=%s", par, round)
					if par < 0 {
						name = "pipe/raw-read/round=" + round
					}
					b.Run(name, func(b *testing.B) {
						b.SetBytes(l.payload)
						for b.Loop() {
							pr, pw, err := os.Pipe()
							if err != nil {
								b.Fatal(err)
							}
							var wg sync.WaitGroup
							wg.Go(func() {
								defer pw.Close()
								f, err := os.Open(l.path)
								if err != nil {
									b.Error(err)
									return
								}
								defer f.Close()
								io.Copy(pw, f)
							})
							if par < 0 {
								_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{pr}, make([]byte, 1<<20))
								pr.Close()
								wg.Wait()
								if err != nil {
									b.Fatal(err)
								}
								continue
							}
							res, err := recovery.RecoverStream(context.Background(), pr, recovery.Discard, recovery.WithParallelism(par))
							pr.Close()
							wg.Wait()
							if err != nil || res.Records != int64(l.records) {
								b.Fatalf("%v %+v", err, res)
							}
						}
					})
				}
			}
		})
	}
}
