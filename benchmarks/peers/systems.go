package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/record"
	tidwall "github.com/tidwall/wal"
	etcdwal "go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/tests/oracle"
)

// System is one log implementation: how to write the workload into dir and how to replay it.
type System struct {
	Name     string // id used on the command line and in results.json
	Label    string // shown in tables and charts
	Log      string // the file or directory (under the size's work dir) the log lives in
	Parallel bool   // replay takes a parallelism (this project only)
	// Write writes the workload. Systems that share a log (the oracle reads this project's
	// file) have Write == nil.
	Write func(path string, w Workload) error
	// Replay replays the log at path into s. par is ignored unless Parallel.
	Replay func(path string, s *Sink, par int) (extra map[string]any, err error)
}

var systems = []*System{
	{Name: "recovery", Label: "this project (v1)", Log: "recovery.wal", Parallel: true, Write: writeRecovery, Replay: replayRecovery},
	{Name: "oracle", Label: "whole-file reference (tests/oracle)", Log: "recovery.wal", Replay: replayOracle},
	{Name: "pebble", Label: "pebble record", Log: "pebble.log", Write: writePebble, Replay: replayPebble},
	{Name: "etcd", Label: "etcd wal (ReadAll)", Log: "etcd-wal", Write: writeEtcd, Replay: replayEtcd},
	{Name: "tidwall", Label: "tidwall/wal", Log: "tidwall-wal", Write: writeTidwall, Replay: replayTidwall},
}

func systemByName(name string) *System {
	for _, s := range systems {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ---- this project ------------------------------------------------------------------------

func writeRecovery(path string, w Workload) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.Write(format.FileHeader[:])
	var p, rec []byte
	for i := range w.Records {
		p = w.Payload(p[:0], i)
		rec = format.AppendRecord(rec[:0], format.LayoutV1, p)
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func replayRecovery(path string, s *Sink, par int) (map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	wf, err := recovery.OSFile(f)
	if err != nil {
		return nil, err
	}
	res, err := recovery.Recover(context.Background(), wf, recovery.ApplyFunc(func(r recovery.Record) error {
		it := r.Ops()
		for it.Next() {
			s.Op(it.Key(), it.Value())
		}
		return nil
	}), recovery.WithParallelism(par), recovery.ReadOnly())
	if err != nil {
		return nil, err
	}
	if res.Truncation != nil {
		return nil, fmt.Errorf("recovery decided a truncation: %+v", *res.Truncation)
	}
	return map[string]any{"parallelism": res.Parallelism, "peak_buffered": res.PeakBuffered}, nil
}

// ---- whole-file reference ----------------------------------------------------------------

func replayOracle(path string, s *Sink, _ int) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := oracle.Recover(data, oracle.Options{}, func(ops []oracle.Op) {
		for _, op := range ops {
			if op.Delete {
				panic("peers: unexpected delete")
			}
			s.Op(op.Key, op.Value)
		}
	})
	if out.Code != "" || out.Truncate {
		return nil, fmt.Errorf("oracle: %+v", out)
	}
	return nil, nil
}

// ---- pebble record -----------------------------------------------------------------------

func writePebble(path string, w Workload) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rw := record.NewWriter(f) // writes whole 32 KiB blocks straight to f
	var p []byte
	for i := range w.Records {
		p = w.Payload(p[:0], i)
		if _, err := rw.WriteRecord(p); err != nil {
			return err
		}
	}
	if err := rw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func replayPebble(path string, s *Sink, _ int) (map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// As pebble's own WAL replay does: the file itself, read a 32 KiB block at a time.
	rr := record.NewReader(f, 0)
	var buf bytes.Buffer // reused: records are copied out of the block buffer into it
	for {
		r, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return nil, err
		}
		s.Payload(buf.Bytes())
	}
	return nil, nil
}

// ---- etcd wal ----------------------------------------------------------------------------

func writeEtcd(dir string, w Workload) error {
	l, err := etcdwal.Create(zap.NewNop(), dir, []byte("peers"))
	if err != nil {
		return err
	}
	// Writes are not what is measured: skip the fdatasync after every Save.
	l.SetUnsafeNoFsync()
	term := uint64(1)
	typ := raftpb.EntryNormal
	var (
		ents  []*raftpb.Entry
		arena []byte
	)
	flush := func(last uint64) error {
		if len(ents) == 0 {
			return nil
		}
		st := &raftpb.HardState{Term: &term, Commit: &last}
		err := l.Save(st, ents) // marshals synchronously: the arena can be reused after
		ents, arena = ents[:0], arena[:0]
		return err
	}
	batch := max(1, (1<<20)/w.Size) // about 1 MiB of entries per Save
	arena = make([]byte, 0, batch*w.Size)
	for i := range w.Records {
		start := len(arena)
		arena = w.Payload(arena, i)
		idx := uint64(i + 1)
		ents = append(ents, &raftpb.Entry{Term: &term, Index: &idx, Type: &typ, Data: arena[start:len(arena):len(arena)]})
		if len(ents) == batch {
			if err := flush(idx); err != nil {
				l.Close()
				return err
			}
		}
	}
	if err := flush(uint64(w.Records)); err != nil {
		l.Close()
		return err
	}
	return l.Close()
}

func replayEtcd(dir string, s *Sink, _ int) (map[string]any, error) {
	// wal.Open (read-write, as the etcd server opens it at boot) + ReadAll: ReadAll decodes
	// every entry of the log into memory and returns them all at once.
	l, err := etcdwal.Open(zap.NewNop(), dir, &walpb.Snapshot{})
	if err != nil {
		return nil, err
	}
	_, _, ents, err := l.ReadAll()
	if err != nil {
		l.Close()
		return nil, err
	}
	for _, e := range ents {
		s.Payload(e.Data)
	}
	n := len(ents)
	if err := l.Close(); err != nil {
		return nil, err
	}
	return map[string]any{"entries_in_memory": n}, nil
}

// ---- tidwall/wal -------------------------------------------------------------------------

// tidwallOptions: defaults (20 MB segments, binary format, 2 cached segments) except NoSync
// (writes are not what is measured) and NoCopy (Read returns a slice of the cached segment,
// like every other reader here, instead of a fresh copy per entry).
func tidwallOptions() *tidwall.Options {
	return &tidwall.Options{NoSync: true, NoCopy: true}
}

func writeTidwall(dir string, w Workload) error {
	l, err := tidwall.Open(dir, tidwallOptions())
	if err != nil {
		return err
	}
	var (
		b tidwall.Batch
		p []byte
	)
	batch := max(1, (1<<20)/w.Size)
	n := 0
	for i := range w.Records {
		p = w.Payload(p[:0], i)
		b.Write(uint64(i+1), p) // copies p
		if n++; n == batch {
			if err := l.WriteBatch(&b); err != nil {
				l.Close()
				return err
			}
			n = 0
		}
	}
	if err := l.WriteBatch(&b); err != nil {
		l.Close()
		return err
	}
	return l.Close()
}

func replayTidwall(dir string, s *Sink, _ int) (map[string]any, error) {
	l, err := tidwall.Open(dir, tidwallOptions())
	if err != nil {
		return nil, err
	}
	defer l.Close()
	first, err := l.FirstIndex()
	if err != nil {
		return nil, err
	}
	last, err := l.LastIndex()
	if err != nil {
		return nil, err
	}
	for i := first; i <= last && last != 0; i++ {
		d, err := l.Read(i)
		if err != nil {
			return nil, fmt.Errorf("read %d: %w", i, err)
		}
		s.Payload(d)
	}
	return nil, l.Close()
}

// ---- references (not systems) ------------------------------------------------------------

// rawRead reads this project's log file with 1 MiB sequential reads and does nothing else:
// the I/O ceiling of a streaming reader on this machine (page cache to user memory).
func rawRead(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// logBytes is the on-disk size of a log (a file, or all files of a directory).
func logBytes(path string) (int64, error) {
	var n int64
	err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// warm reads every file of a log once (into the page cache).
func warm(path string) error {
	return filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		_, err = rawRead(p)
		return err
	})
}

var errUsage = errors.New("usage")
