package replication

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real-process tests: walnode processes on loopback TCP (127.0.0.1 only), driven through
// their HTTP API.

// buildWalnode builds the node program once per test binary run, into buildDir (removed by
// TestMain).
var (
	buildDir     string
	buildWalnode = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "walnode-build-")
		if err != nil {
			return "", err
		}
		buildDir = dir
		bin := filepath.Join(dir, "walnode")
		out, err := exec.Command("go", "build", "-o", bin, "./cmd/walnode").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build ./cmd/walnode: %v\n%s", err, out)
		}
		return bin, nil
	})
)

// proc is one walnode process.
type proc struct {
	id, dir    string
	raft, http string // the addresses it listens on (127.0.0.1, ports chosen at the first start)
	extra      []string
	cmd        *exec.Cmd
	done       chan struct{} // closed once the process has exited and its output is read
	log        *syncBuffer
}

// startProc starts a node; flags are added to --id/--dir/--raft/--http. It waits for the line
// that gives the addresses it listens on.
func startProc(t *testing.T, p *proc, flags ...string) {
	t.Helper()
	bin, err := buildWalnode()
	if err != nil {
		t.Fatal(err)
	}
	if p.log == nil {
		p.log = &syncBuffer{}
	}
	raftAddr, httpAddr := p.raft, p.http
	if raftAddr == "" {
		raftAddr, httpAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	args := append([]string{"--id", p.id, "--dir", p.dir, "--raft", raftAddr, "--http", httpAddr,
		"--log-level", "warn"}, append(p.extra, flags...)...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = p.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	lines := make(chan string, 1)
	go func() { // owned by the process: ends when its stdout closes, then reaps it
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
			fmt.Fprintln(p.log, sc.Text())
		}
		close(lines)
		cmd.Wait()
		close(p.done)
	}()
	select {
	case line, ok := <-lines:
		var id string
		if _, err := fmt.Sscanf(line, "walnode: id=%s raft=%s http=%s", &id, &p.raft, &p.http); !ok || err != nil {
			t.Fatalf("node %s: first line %q (%v); its log:\n%s", p.id, line, err, p.log.tail(8<<10))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not start in 60 s; its log:\n%s", p.id, p.log.tail(8<<10))
	}
}

// kill sends sig and waits for the process to exit.
func (p *proc) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("node %s did not exit on %v within 30 s", p.id, sig)
	}
	p.cmd = nil
}

func (p *proc) running() bool { return p.cmd != nil }

var httpc = &http.Client{Timeout: 10 * time.Second}

func (p *proc) status() (Status, error) {
	var s Status
	resp, err := httpc.Get("http://" + p.http + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// put writes key=value through p (redirected to the leader); nil means acknowledged.
func put(p *proc, key, value string) error {
	req, err := http.NewRequest(http.MethodPut, "http://"+p.http+"/kv/"+key, strings.NewReader(value))
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT %s: %s: %s", key, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// get reads key at p with the given consistency.
func get(p *proc, key, consistency string) (string, bool, error) {
	resp, err := httpc.Get("http://" + p.http + "/kv/" + key + "?consistency=" + consistency)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return string(b), true, nil
	case http.StatusNotFound:
		return "", false, nil
	}
	return "", false, fmt.Errorf("GET %s: %s: %s", key, resp.Status, bytes.TrimSpace(b))
}

// procCluster starts three nodes: p[0] bootstraps, the others join it.
func procCluster(t *testing.T, extra ...string) []*proc {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs walnode processes")
	}
	root := t.TempDir()
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(root, fmt.Sprintf("n%d", i+1)), extra: extra}
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.kill(t, syscall.SIGKILL)
		}
		httpc.CloseIdleConnections()
		if t.Failed() {
			for _, p := range ps {
				t.Logf("node %s's log (last 16 KiB):\n%s", p.id, p.log.tail(16<<10))
			}
		}
	})
	startProc(t, ps[0], "--bootstrap")
	for _, p := range ps[1:] {
		startProc(t, p, "--join", ps[0].http)
	}
	waitAgree(t, ps)
	return ps
}

// waitAgree waits until every running node sees three servers and the same leader, whose HTTP
// address it knows, and returns that leader.
func waitAgree(t *testing.T, ps []*proc) *proc {
	t.Helper()
	var leader *proc
	eventually(t, 60*time.Second, "the nodes do not agree on a leader of three servers", func() bool {
		lead := ""
		for _, p := range ps {
			if !p.running() {
				continue
			}
			s, err := p.status()
			if err != nil || len(s.Servers) != 3 || s.LeaderHTTP == "" || (lead != "" && s.LeaderHTTP != lead) {
				return false
			}
			lead = s.LeaderHTTP
		}
		for _, p := range ps {
			if p.http == lead && p.running() {
				leader = p
			}
		}
		return leader != nil
	})
	return leader
}

// caughtUp waits until every running node has applied what the leader has, after a strong
// read on the leader.
func caughtUp(t *testing.T, ps []*proc) {
	t.Helper()
	leader := waitAgree(t, ps)
	var want uint64
	eventually(t, 60*time.Second, "no strong read on the leader", func() bool {
		if _, _, err := get(leader, "probe", "strong"); err != nil {
			return false
		}
		s, err := leader.status()
		want = s.FSM.Applied
		return err == nil
	})
	for _, p := range ps {
		if !p.running() {
			continue
		}
		eventually(t, 60*time.Second, fmt.Sprintf("node %s did not catch up to %d", p.id, want), func() bool {
			s, err := p.status()
			return err == nil && s.FSM.Applied >= want
		})
	}
}

// Three walnode processes on loopback TCP; clients write through them; the leader is killed
// with SIGKILL while they do. The survivors elect a leader and the writes go on. Every write
// acknowledged (204), before or after the kill, is then on both survivors, and on the killed
// node once it is restarted from its directory.
func TestProcessLeaderKilledDuringWrites(t *testing.T) {
	ps := procCluster(t)
	leader := waitAgree(t, ps)

	var mu sync.Mutex
	acked := map[string]string{}
	var attempts int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("w%d-%05d", w, n), fmt.Sprintf("value %d %d", w, n)
				p := ps[(w+n)%3] // any node: followers redirect to the leader
				err := put(p, key, val)
				mu.Lock()
				attempts++
				if err == nil {
					acked[key] = val
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	countAcked := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 60*time.Second, "no writes acknowledged", func() bool { return countAcked() >= 200 })
	before := countAcked()
	leader.kill(t, syscall.SIGKILL)
	eventually(t, 60*time.Second, "no write acknowledged after the kill", func() bool { return countAcked() >= before+200 })
	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged (%d before the kill), %d attempted", len(acked), before, attempts)

	check := func(p *proc) {
		t.Helper()
		for key, want := range acked {
			got, ok, err := get(p, key, "stale")
			if err != nil || !ok || got != want {
				t.Fatalf("node %s: %s = %q %v %v, want %q (acknowledged)", p.id, key, got, ok, err, want)
			}
		}
	}
	caughtUp(t, ps)
	for _, p := range ps {
		if p.running() {
			check(p)
		}
	}
	startProc(t, leader) // a restart: its state is on disk, no --bootstrap or --join
	caughtUp(t, ps)
	check(leader)
	s, err := leader.status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the restarted node: %+v", s.FSM)
}

// A snapshot the leader sends that is damaged (here: one bit of the stored snapshot flipped, on
// both nodes that could lead, so every send of it is damaged) is refused by a follower that
// needs it, which keeps its state; once new snapshots are taken, the follower installs a good
// one and holds every acknowledged write.
func TestProcessDamagedSnapshotRefused(t *testing.T) {
	ps := procCluster(t, "--trailing-logs", "20", "--snapshot-threshold", "1000000", "--snapshot-interval", "1h")
	leader := waitAgree(t, ps)
	var slow *proc
	for _, p := range ps {
		if p != leader {
			slow = p
			break
		}
	}
	acked := map[string]string{}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			key, val := kv(i)
			eventually(t, 60*time.Second, "a write was not acknowledged", func() bool { return put(leader, key, val) == nil })
			acked[key] = val
		}
	}
	write(0, 20)
	caughtUp(t, ps)
	slow.kill(t, syscall.SIGTERM)
	write(20, 120)

	// A snapshot on both running nodes (raft then keeps 20 entries of its log), so that
	// whichever leads when the follower is back must send it one (a leader with the whole log
	// would send entries).
	snapshot := func() {
		t.Helper()
		for _, p := range ps {
			if p == slow {
				continue
			}
			resp, err := httpc.Post("http://"+p.http+"/snapshot", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("snapshot on %s: %s %s", p.id, resp.Status, b)
			}
		}
	}
	snapshot()
	// Damage both stored snapshots in the middle of their logs.
	for _, p := range ps {
		if p == slow {
			continue
		}
		snaps, err := filepath.Glob(filepath.Join(p.dir, "snapshots", "*", stateFile))
		if err != nil || len(snaps) != 1 {
			t.Fatalf("%s's snapshots: %v %v", p.id, snaps, err)
		}
		damage(t, snaps[0])
	}

	startProc(t, slow)
	eventually(t, 60*time.Second, "the follower did not refuse the damaged snapshot", func() bool {
		s, err := slow.status()
		return err == nil && s.FSM.Refused >= 1
	})
	// It keeps the state it had: the first 20 writes, none of the next 100.
	if s, _ := slow.status(); s.FSM.Restores != 0 || s.FSM.Generation != 1 {
		t.Fatalf("after the refusal the follower is at %+v", s.FSM)
	}
	for key, want := range map[string]bool{"key00010": true, "key00119": false} {
		if _, ok, err := get(slow, key, "stale"); err != nil || ok != want {
			t.Fatalf("after the refusal the follower has %s: %v (want %v), %v", key, ok, want, err)
		}
	}
	write(120, 150)
	snapshot() // new, good snapshots
	caughtUp(t, ps)
	s, err := slow.status()
	if err != nil {
		t.Fatal(err)
	}
	if s.FSM.Restores != 1 || s.FSM.Refused < 1 {
		t.Fatalf("the follower: %+v (want a refusal, then one install)", s.FSM)
	}
	for key, want := range acked {
		if got, ok, err := get(slow, key, "stale"); err != nil || !ok || got != want {
			t.Fatalf("follower: %s = %q %v %v, want %q", key, got, ok, err, want)
		}
	}
	if !strings.Contains(slow.log.tail(1<<20), "snapshot refused") {
		t.Fatal("the follower's log does not say it refused a snapshot")
	}
}

// damage flips one bit in the middle of the log in a stored snapshot.
func damage(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < snapshotHeaderSize+64 {
		t.Fatalf("snapshot of %d bytes", len(b))
	}
	b[snapshotHeaderSize+(len(b)-snapshotHeaderSize)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
