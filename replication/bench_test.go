package replication

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// BenchmarkInstallSnapshot installs a snapshot of 256 MiB of live state (1 GiB and 4 GiB too
// with REPLICATION_BENCH_LARGE=1) on a new node, the way raft does on a follower: the snapshot
// is in the node's snapshot store, and FSM.Restore reads it from there. Each install runs in
// a process of its own (this test binary again), so that its peak resident memory (VmHWM) is
// the install's alone, with:
//
//   - streaming: this package's FSM (db.Restore: a 1 MiB copy buffer and recovery's pool, then
//     the store loaded by the database's open);
//   - naive: the same FSM behind a Restore that first reads the whole snapshot into memory
//     (io.ReadAll), as the FSMs of the issues cited in the README do, then installs it.
//
// Reported per install: MB/s of snapshot, peak-MiB (VmHWM), store-MiB (resident after the
// install, once garbage is collected: the store itself and the runtime), over-store-MiB (peak
// minus that), open-peak-MiB (the peak of a plain open of the installed database, measured in
// the same child afterwards: the store with the location index the database's open builds
// while it loads, what a restart of the node costs), over-open-MiB (the install's peak minus
// the open's: what installing a snapshot needs beyond opening its database) and heap-peak-MiB
// (Go heap objects, sampled every 2 ms). The data (the source database, the snapshot, the installed copy: about
// three times the size) lives in a temporary directory, removed at the end.
func BenchmarkInstallSnapshot(b *testing.B) {
	sizes := []int64{256 << 20}
	if os.Getenv("REPLICATION_BENCH_LARGE") != "" {
		sizes = append(sizes, 1<<30, 4<<30)
	}
	for _, size := range sizes {
		dir, err := os.MkdirTemp("", "replication-bench-")
		if err != nil {
			b.Fatal(err)
		}
		snapDir, id, snapSize := prepareSnapshot(b, dir, size)
		debug.FreeOSMemory() // the source's store, closed: not this process's memory during the installs
		for _, kind := range []string{"streaming", "naive"} {
			b.Run(fmt.Sprintf("live=%dMiB/fsm=%s", size>>20, kind), func(b *testing.B) {
				b.SetBytes(snapSize)
				var last childReport
				for i := range b.N {
					target := filepath.Join(dir, fmt.Sprintf("target-%s-%d", kind, i))
					b.StartTimer()
					last = runInstallChild(b, kind, snapDir, id, target)
					b.StopTimer()
					os.RemoveAll(target)
				}
				mib := func(n int64) float64 { return float64(n) / (1 << 20) }
				b.ReportMetric(mib(last.PeakRSS), "peak-MiB")
				b.ReportMetric(mib(last.StoreRSS), "store-MiB")
				b.ReportMetric(mib(last.PeakRSS-last.StoreRSS), "over-store-MiB")
				b.ReportMetric(mib(last.OpenPeakRSS), "open-peak-MiB")
				b.ReportMetric(mib(last.PeakRSS-last.OpenPeakRSS), "over-open-MiB")
				b.ReportMetric(mib(last.PeakHeap), "heap-peak-MiB")
				b.ReportMetric(float64(last.Restore)/1e9, "install-s")
			})
		}
		os.RemoveAll(dir)
	}
}

// prepareSnapshot builds a database of about size bytes of live pairs (4 KiB values) through
// the FSM, and persists its snapshot into a snapshot store, as a follower receives one.
func prepareSnapshot(b *testing.B, dir string, size int64) (snapDir, id string, snapSize int64) {
	b.Helper()
	start := time.Now()
	src, err := OpenFSM(filepath.Join(dir, "source"), FSMOptions{CompactMinBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	const valueSize, perCommand, perBatch = 4096, 16, 16
	r := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, valueSize)
	var index uint64
	var key int
	for written := int64(0); written < size; {
		logs := make([]*raft.Log, perBatch)
		for i := range logs {
			ops := make([]Op, perCommand)
			for j := range ops {
				for k := 0; k < len(val); k += 8 {
					v := r.Uint64()
					for x := range 8 {
						val[k+x] = byte(v >> (8 * x))
					}
				}
				ops[j] = Op{Kind: OpSet, Key: fmt.Appendf(nil, "key%012d", key), Value: bytes.Clone(val)}
				key++
				written += int64(len(ops[j].Key) + len(ops[j].Value))
			}
			index++
			data, err := EncodeCommand(ops...)
			if err != nil {
				b.Fatal(err)
			}
			logs[i] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
		}
		for _, resp := range src.ApplyBatch(logs) {
			if resp != nil {
				b.Fatal(resp)
			}
		}
	}
	snapDir = filepath.Join(dir, "snapshots")
	store, err := NewSnapshotStore(snapDir, 1)
	if err != nil {
		b.Fatal(err)
	}
	snap, err := src.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	sink, err := store.Create(1, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		b.Fatal(err)
	}
	snap.Release()
	metas, err := store.List()
	if err != nil || len(metas) != 1 {
		b.Fatal(metas, err)
	}
	b.Logf("prepared %d pairs (%d MiB of keys and values), a snapshot of %d bytes, in %v", key, size>>20, metas[0].Size, time.Since(start).Round(time.Millisecond))
	return snapDir, metas[0].ID, metas[0].Size
}

// childReport is what an install child prints.
type childReport struct {
	Restore  time.Duration // FSM.Restore, from open to installed
	PeakRSS  int64         // VmHWM
	StoreRSS int64         // VmRSS after the install, garbage collected and returned
	PeakHeap int64         // sampled /memory/classes/heap/objects:bytes
	// OpenPeakRSS is the peak RSS of a plain open of the installed database, in the same
	// process after the install's memory was returned (VmHWM reset through clear_refs).
	OpenPeakRSS int64
	Applied     uint64
}

const helperEnv = "REPLICATION_BENCH_CHILD"

func runInstallChild(b *testing.B, kind, snapDir, id, target string) childReport {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	arg, _ := json.Marshal([]string{kind, snapDir, id, target})
	cmd.Env = append(os.Environ(), helperEnv+"="+string(arg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("install child: %v\n%s", err, stderr.Bytes())
	}
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		b.Fatalf("install child said %q: %v", out, err)
	}
	return rep
}

// helperMain is the install child (TestMain runs it instead of the tests when helperEnv is
// set): it installs the snapshot into a new FSM and prints a childReport.
func helperMain() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &args); err != nil || len(args) != 4 {
		fmt.Fprintln(os.Stderr, "install child: bad arguments")
		return 2
	}
	kind, snapDir, id, target := args[0], args[1], args[2], args[3]
	if err := func() error {
		store, err := NewSnapshotStore(snapDir, 1)
		if err != nil {
			return err
		}
		f, err := OpenFSM(target, FSMOptions{CompactMinBytes: -1, Logger: hclog.NewNullLogger()})
		if err != nil {
			return err
		}
		defer f.Close()
		var peakHeap atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { samplePeakHeap(&peakHeap, stop) })
		start := time.Now()
		_, rc, err := store.Open(id)
		if err == nil {
			if kind == "naive" {
				err = naiveRestore(f, rc)
			} else {
				err = f.Restore(rc)
			}
		}
		elapsed := time.Since(start)
		close(stop)
		wg.Wait()
		if err != nil {
			return err
		}
		runtime.GC()
		debug.FreeOSMemory()
		rep := childReport{Restore: elapsed, PeakRSS: procStatus("VmHWM"), StoreRSS: procStatus("VmRSS"),
			PeakHeap: peakHeap.Load(), Applied: f.AppliedIndex()}
		// What a plain open of the installed database takes (a node's restart): the store
		// and the index the database's open builds beside it while it loads.
		if err := f.Close(); err != nil {
			return err
		}
		runtime.GC()
		debug.FreeOSMemory()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil { // VmHWM := VmRSS
			return fmt.Errorf("reset the peak RSS: %w", err)
		}
		g, err := OpenFSM(target, FSMOptions{CompactMinBytes: -1, Logger: hclog.NewNullLogger()})
		if err != nil {
			return err
		}
		rep.OpenPeakRSS = procStatus("VmHWM")
		if g.AppliedIndex() != rep.Applied {
			return fmt.Errorf("reopened at %d, installed at %d", g.AppliedIndex(), rep.Applied)
		}
		g.Close()
		return json.NewEncoder(os.Stdout).Encode(rep)
	}(); err != nil {
		fmt.Fprintln(os.Stderr, "install child:", err)
		return 1
	}
	return 0
}

// naiveRestore is the restore the cited issues describe: the whole snapshot read into memory,
// then installed.
func naiveRestore(f *FSM, rc io.ReadCloser) error {
	all, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	return f.Restore(io.NopCloser(bytes.NewReader(all)))
}

func samplePeakHeap(peak *atomic.Int64, stop <-chan struct{}) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		metrics.Read(s)
		if v := int64(s[0].Value.Uint64()); v > peak.Load() {
			peak.Store(v)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// procStatus reads a "kB" field of /proc/self/status, in bytes (-1 where there is none).
func procStatus(field string) int64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// BenchmarkClusterWrites is writes per second through a 3-node cluster in this process, on
// raft's TCP transport over 127.0.0.1, each node with bbolt (fsync on) for raft's log and the
// database (fsync on) for its state, at 1, 16 and 64 concurrent clients, each writing 128-byte
// values to its own keys through the leader. Group commit shows in the entries per database
// transaction on the leader (cmds/tx: the commands one ApplyBatch commits with one fsync) and
// in raft's own batching of appends.
func BenchmarkClusterWrites(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			nodes := tcpCluster(b, 3)
			var leader *Node
			deadline := time.Now().Add(30 * time.Second)
			for leader == nil {
				for _, n := range nodes {
					if n.Raft().State() == raft.Leader {
						leader = n
					}
				}
				if time.Now().After(deadline) {
					b.Fatal("no leader")
				}
				time.Sleep(10 * time.Millisecond)
			}
			before := leader.FSM().Stats()
			val := bytes.Repeat([]byte("v"), 128)
			var next atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if err := leader.Put(fmt.Appendf(nil, "c%02d-%09d", c, i), val); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d writes failed", failed.Load())
			}
			after := leader.FSM().Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			if tx := after.Transactions - before.Transactions; tx > 0 {
				b.ReportMetric(float64(after.Commands-before.Commands)/float64(tx), "cmds/tx")
			}
		})
	}
}

// tcpCluster starts n nodes on raft's TCP transport on 127.0.0.1, shut down at the end.
func tcpCluster(b *testing.B, n int) []*Node {
	b.Helper()
	var trans []*raft.NetworkTransport
	var servers []raft.Server
	for i := range n {
		tr, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		trans = append(trans, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprint("n", i)), Address: tr.LocalAddr()})
	}
	var nodes []*Node
	for i := range n {
		rc := raft.DefaultConfig()
		rc.SnapshotThreshold = 1 << 40
		nd, err := StartNode(NodeConfig{ID: fmt.Sprint("n", i), Dir: b.TempDir(), Transport: trans[i],
			Bootstrap: true, Servers: servers, Raft: rc, FSM: FSMOptions{CompactMinBytes: -1}})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	b.Cleanup(func() {
		for _, nd := range nodes {
			nd.Shutdown()
		}
	})
	return nodes
}
