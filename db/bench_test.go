package db_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamwal/recovery/internal/heapsample"
	"github.com/streamwal/recovery/internal/workload"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
)

// BenchmarkCommit: small transactions (one 16-byte key, 100-byte value), each committed with
// its own append and fdatasync, on the OS filesystem in a temporary directory. Bytes are the
// record bytes each commit appends.
func BenchmarkCommit(b *testing.B) {
	path := filepath.Join(b.TempDir(), "commit.db")
	d, err := db.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	key, val := make([]byte, 16), make([]byte, 100)
	b.SetBytes(format.V1HeaderSize + 1 + 4 + 16 + 4 + 100)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		binary.BigEndian.PutUint64(key, uint64(n%4096))
		n++
		if err := d.Update(func(tx *db.Tx) error { return tx.Set(key, val) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "commits/s")
}

// BenchmarkOpen256MiB: Open (recovery into the store) of a 256 MiB v1 log of ~900-byte
// records (4 sets of 16-byte keys and 200-byte values), the keys drawn from 4096, so the store
// stays under 1 MiB while the log is 300,000 records and 1.2 million ops. The file is in the
// page cache. recover-only is the same recovery into recovery.Discard: the difference is the
// cost of the store.
func BenchmarkOpen256MiB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.db")
	size := writeBigLog(b, path, 256<<20, 4096)
	for _, p := range []int{1, 0} {
		name := fmt.Sprintf("parallelism=%d", p)
		b.Run("open/"+name, func(b *testing.B) { benchOpen(b, path, size, p, 4096) })
		b.Run("recover-only/"+name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				rf, err := recovery.OSFile(f)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := recovery.Recover(context.Background(), rf, recovery.Discard, recovery.WithParallelism(p), recovery.ReadOnly()); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

func benchOpen(b *testing.B, path string, size int64, par int, keys int) {
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		d, err := db.Open(path, db.WithRecovery(recovery.WithParallelism(par)))
		if err != nil {
			b.Fatal(err)
		}
		if err := d.View(func(tx *db.Tx) error {
			if tx.Len() != keys {
				return fmt.Errorf("%d keys", tx.Len())
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// BenchmarkOpenUniqueKeys: Open of a 64 MiB log of the same records whose keys are all
// distinct (the store ends up holding 300,000 pairs, about the size of the log): the other
// extreme from BenchmarkOpen256MiB, where every op inserts.
func BenchmarkOpenUniqueKeys(b *testing.B) {
	path := filepath.Join(b.TempDir(), "unique.db")
	size := writeBigLog(b, path, 64<<20, 0)
	for _, p := range []int{1, 0} {
		b.Run(fmt.Sprintf("parallelism=%d", p), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				d, err := db.Open(path, db.WithRecovery(recovery.WithParallelism(p)))
				if err != nil {
					b.Fatal(err)
				}
				d.Close()
			}
		})
	}
}

// writeBigLog writes a v1 log of about target bytes of 4-set records, keys drawn from
// keySpace distinct keys (0: every key distinct).
func writeBigLog(b *testing.B, path string, target int64, keySpace int) int64 {
	b.Helper()
	key, val := make([]byte, 16), make([]byte, 200)
	var payload []byte
	i := 0
	return writeLog(b, path, func(size int64) []byte {
		if size >= target {
			return nil
		}
		payload = payload[:0]
		for j := range 4 {
			k := uint64(i*4 + j)
			if keySpace > 0 {
				k = k * 2654435761 % uint64(keySpace)
			} else {
				k = k * 2654435761 % (1 << 40) // distinct, in no particular order
			}
			binary.BigEndian.PutUint64(key[8:], k)
			binary.BigEndian.PutUint64(val, uint64(i))
			payload = format.AppendSet(payload, key, val)
		}
		i++
		return payload
	}, 1<<62)
}

// writeLog writes a v1 log of the payloads next returns (given the size so far; nil ends it),
// stopping before a record would take the file past limit, and returns its size.
func writeLog(b *testing.B, path string, next func(size int64) []byte, limit int64) int64 {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(format.FileHeader[:])
	size := int64(format.FileHeaderSize)
	var rec []byte
	for p := next(size); p != nil; p = next(size) {
		rec = format.AppendRecord(rec[:0], format.LayoutV1, p)
		if size+int64(len(rec)) > limit {
			break
		}
		w.Write(rec)
		size += int64(len(rec))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return size
}

// BenchmarkConcurrentCommits: the commit benchmark's transactions from 1, 4, 16 and 64
// goroutines at once, each committing its own transactions (b.N in all), with group commit
// (the default) and without (WithoutGroupCommit: one append and one fdatasync each, under the
// writers' lock), in one run.
func BenchmarkConcurrentCommits(b *testing.B) {
	for _, mode := range []string{"serial", "group"} {
		for _, writers := range []int{1, 4, 16, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "commit.db")
				var opts []db.Option
				if mode == "serial" {
					opts = append(opts, db.WithoutGroupCommit())
				}
				d, err := db.Open(path, opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := 0; w < writers; w++ {
					wg.Go(func() {
						key, val := make([]byte, 16), make([]byte, 100)
						for {
							n := next.Add(1)
							if n > int64(b.N) {
								return
							}
							binary.BigEndian.PutUint64(key, uint64(n%4096))
							if err := d.Update(func(tx *db.Tx) error { return tx.Set(key, val) }); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			})
		}
	}
}

// BenchmarkOpenDemo: read-only Open of the log walrec demo builds (256 MiB of a small shop's
// transactions: ~58,000 records, ~436,000 sets and deletes, ~60,000 live keys holding
// ~43 MiB), against recovery alone into recovery.Discard in the same run. heapMiB is the
// peak heap growth during one Open (sampled), liveMiB the keys and values the store holds.
func BenchmarkOpenDemo(b *testing.B) {
	path := filepath.Join(b.TempDir(), "demo.db")
	size := writeDemoLog(b, path, 256<<20)
	for _, p := range []int{1, 0} {
		name := fmt.Sprintf("parallelism=%d", p)
		b.Run("open/"+name, func(b *testing.B) {
			b.SetBytes(size)
			var heap, live int64
			for b.Loop() {
				h := heapsample.Start(time.Millisecond)
				d, err := db.Open(path, db.ReadOnly(), db.WithRecovery(recovery.WithParallelism(p), recovery.WithProgress(func(int64, int64) { h.Sample() })))
				heap = h.Growth()
				if err != nil {
					b.Fatal(err)
				}
				if live == 0 { // once: Range copies every value
					b.StopTimer()
					d.View(func(tx *db.Tx) error {
						for k, v := range tx.Range(nil, nil) {
							live += int64(len(k) + len(v))
						}
						return nil
					})
					b.StartTimer()
				}
				d.Close()
			}
			b.ReportMetric(float64(heap)/(1<<20), "heapMiB")
			b.ReportMetric(float64(live)/(1<<20), "liveMiB")
		})
		b.Run("recover-only/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				rf, _ := recovery.OSFile(f)
				if _, err := recovery.Recover(context.Background(), rf, recovery.Discard, recovery.WithParallelism(p), recovery.ReadOnly()); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// writeDemoLog writes size bytes (at most) of the demo's workload (internal/workload's shop) as
// a v1 log at path, and returns its size.
func writeDemoLog(b *testing.B, path string, limit int64) int64 {
	shop := workload.NewShop(1)
	return writeLog(b, path, func(int64) []byte { return shop.Tx() }, limit)
}

// BenchmarkCompactDemo: 192 MiB of the demo's workload (the demo's 256 MiB would put this
// benchmark's files over the project's 300 MiB bound for temporary files): a read-only Open
// before compacting, Compact itself (MB/s of the old log; the log is written again, untimed,
// before each one), and a read-only Open of the compacted log, in one run.
func BenchmarkCompactDemo(b *testing.B) {
	path := filepath.Join(b.TempDir(), "demo.db")
	size := writeDemoLog(b, path, 192<<20)
	open := func(b *testing.B) {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(fi.Size())
		for b.Loop() {
			d, err := db.Open(path, db.ReadOnly())
			if err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
		b.ReportMetric(float64(fi.Size())/(1<<20), "fileMiB")
	}
	b.Run("open-before", open)
	b.Run("compact", func(b *testing.B) {
		b.SetBytes(size)
		var after int64
		for b.Loop() {
			b.StopTimer()
			if fi, err := os.Stat(path); err != nil || fi.Size() != size {
				writeDemoLog(b, path, 192<<20)
			}
			d, err := db.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := d.Compact()
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			after = res.After
			d.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(after)/(1<<20), "afterMiB")
	})
	b.Run("open-after", open)
}

// BenchmarkNestedCheck: group commit's throughput with the goroutine id that detects a nested
// Update read from the runtime (fast) and parsed from runtime.Stack (stack), alternated in one
// run (docs/design.md's decision record on the nested check).
func BenchmarkNestedCheck(b *testing.B) {
	for _, round := range []string{"a", "b"} {
		for _, id := range []string{"fast", "stack"} {
			for _, writers := range []int{1, 64} {
				b.Run(fmt.Sprintf("%s/writers=%d/round=%s", id, writers, round), func(b *testing.B) {
					if id == "stack" {
						defer db.UseStackGoid()()
					}
					d, err := db.Open(filepath.Join(b.TempDir(), "c.db"))
					if err != nil {
						b.Fatal(err)
					}
					defer d.Close()
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					for range writers {
						wg.Go(func() {
							key, val := make([]byte, 16), make([]byte, 100)
							for next.Add(1) <= int64(b.N) {
								binary.BigEndian.PutUint64(key, uint64(next.Load()%4096))
								if err := d.Update(func(tx *db.Tx) error { return tx.Set(key, val) }); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
				})
			}
		}
	}
}

// BenchmarkBackup: a full backup of a 256 MiB log (4 KiB records, in the page cache) to a
// file, against a plain copy of the file (io.Copy, which on Linux is copy_file_range) and a
// copy through user space in 1 MiB reads and writes, alternated in one run; and a restore of
// that backup from a stream (an io.Reader that is not a file) into a new database. Bytes are
// the log's.
func BenchmarkBackup(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "big.db")
	size := writeBigLog(b, path, 256<<20, 4096)
	out := filepath.Join(dir, "out")
	fresh := func(b *testing.B) *os.File {
		os.Remove(out)
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	for _, round := range []string{"a", "b"} {
		b.Run("plain-copy/round="+round, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				src, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				dst := fresh(b)
				if _, err := io.Copy(dst, src); err != nil {
					b.Fatal(err)
				}
				src.Close()
				dst.Close()
			}
		})
		b.Run("user-copy/round="+round, func(b *testing.B) {
			b.SetBytes(size)
			buf := make([]byte, 1<<20)
			for b.Loop() {
				src, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				dst := fresh(b)
				if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf); err != nil {
					b.Fatal(err)
				}
				src.Close()
				dst.Close()
			}
		})
		b.Run("backup/round="+round, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				dst := fresh(b)
				info, err := db.BackupFile(context.Background(), nil, path, dst)
				if err != nil || info.End != size {
					b.Fatal(info, err)
				}
				dst.Close()
			}
		})
		b.Run("restore-from-stream/round="+round, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				src, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(out)
				if _, err := db.Restore(context.Background(), struct{ io.Reader }{src}, out); err != nil {
					b.Fatal(err)
				}
				src.Close()
			}
		})
	}
}
