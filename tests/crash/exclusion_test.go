package crash

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/streamwal/recovery/db"
)

// holder is the other process of TestExclusionAcrossCompactions: it opens CRASH_DB, then for
// each of CRASH_ROUNDS rounds commits key "r<round>" and compacts, printing "ack <round>"; then
// it prints "finished" and keeps the database open until its stdin closes.
func holder() int {
	rounds, _ := strconv.Atoi(os.Getenv("CRASH_ROUNDS"))
	d, err := db.Open(os.Getenv("CRASH_DB"))
	if err != nil {
		fmt.Printf("err open: %v\n", err)
		return 2
	}
	fmt.Println("holding")
	for i := range rounds {
		if err := d.Update(func(tx *db.Tx) error { return tx.Set(fmt.Appendf(nil, "r%05d", i), []byte("v")) }); err != nil {
			fmt.Printf("err commit: %v\n", err)
			return 2
		}
		fmt.Printf("ack %d\n", i)
		if _, err := d.Compact(); err != nil {
			fmt.Printf("err compact: %v\n", err)
			return 2
		}
	}
	fmt.Println("finished")
	io.Copy(io.Discard, os.Stdin)
	if err := d.Close(); err != nil {
		fmt.Printf("err close: %v\n", err)
		return 2
	}
	return 0
}

// A writer's exclusion holds across every compaction, between two real processes (real
// flock, real rename): while the holder process commits and compacts in a loop, this process
// opens the database as fast as it can, and every open must be LOCKED, whatever the timing of
// its flock against the holder's rename and close. An open that gets the lock does what
// `walrec compact` beside a running application would (it compacts), which renamed a stale
// state over the holder's commits. Afterwards every commit the holder was acknowledged is in
// the file.
func TestExclusionAcrossCompactions(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	path := filepath.Join(t.TempDir(), "x.db")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CRASH_HOLDER=1", "CRASH_DB="+path, fmt.Sprintf("CRASH_ROUNDS=%d", rounds))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := bufio.NewScanner(pr)
	if !out.Scan() || out.Text() != "holding" {
		t.Fatalf("holder: %q", out.Text())
	}
	// The holder's lines, read while this goroutine opens.
	acked := make(map[int]bool)
	lines := make(chan string, rounds+8) // room for every line: the reader never blocks, even after a failure
	go func() {
		defer close(lines)
		for out.Scan() {
			lines <- out.Text()
		}
	}()
	var intruders, lockedOpens int
	finished := false
	for !finished {
		select {
		case line, ok := <-lines:
			switch {
			case !ok:
				t.Fatal("the holder ended before it finished")
			case line == "finished":
				finished = true
			case strings.HasPrefix(line, "ack "):
				n, _ := strconv.Atoi(strings.TrimPrefix(line, "ack "))
				acked[n] = true
			default:
				t.Fatalf("holder: %s", line)
			}
			continue
		default:
		}
		d, err := db.Open(path)
		switch {
		case err == nil:
			intruders++
			_, _ = d.Compact()
			d.Close()
		case errors.Is(err, db.ErrLocked):
			lockedOpens++
		default:
			t.Fatal(err)
		}
	}
	stdin.Close()
	for line := range lines {
		t.Fatalf("holder: %s", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	if intruders > 0 {
		t.Errorf("%d opens in this process got the lock while the holder had the database open (%d were LOCKED)", intruders, lockedOpens)
	}
	if lockedOpens == 0 {
		t.Fatal("no open was tried while the holder compacted")
	}
	d, err := db.Open(path, db.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var missing []int
	if err := d.View(func(tx *db.Tx) error {
		for n := range acked {
			if v, _ := tx.Get(fmt.Appendf(nil, "r%05d", n)); v == nil {
				missing = append(missing, n)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(acked) != rounds || len(missing) > 0 {
		t.Fatalf("%d acknowledged commits, %d missing from the file: %v", len(acked), len(missing), missing)
	}
	t.Logf("%d compactions in the other process, %d opens here", rounds, lockedOpens)
}
