package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// assertEmptyDir fails unless dir exists and holds nothing: the demo cleaned up.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("the demo left %v in %s", names, dir)
	}
}

// TestDemo runs a small demo (the hidden --demo-size flag) and checks its report and that its
// temporary directory is gone.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	r := walrec(t, "demo", "--demo-size", "8MiB", "--tmpdir", tmp).mustExit(t, 0, "demo")
	for _, want := range []string{
		"  built     demo.db: 8.0 MiB,",
		"with format.AppendRecord",
		"  crash     the last append stopped part way",
		"database open, sequential",
		"database open, parallel (",
		"recovery alone, sequential",
		"recovery alone, parallel (",
		"read buffers",
		"heap peak",
		"heap kept",
		"for a quarter of the log and ",
		"  found     torn_tail at offset ",
		"  repaired  a read-write open cut those ",
		"  after     one more commit, then a clean reopen",
		"  cleanup   removed " + filepath.Join(tmp, "walrec-demo-"),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() || r.stderr != "" {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	assertEmptyDir(t, tmp)
}

// TestDemoCleansUpOnFailure: an interrupted demo fails (exit 3) and still removes its directory.
func TestDemoCleansUpOnFailure(t *testing.T) {
	tmp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := runContext(ctx, []string{"demo", "--demo-size", "8MiB", "--tmpdir", tmp}, &out, &errb); code != exitError {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "stopped (the temporary directory") || len(lines(errb.String())) != 1 {
		t.Fatalf("stderr %q", errb.String())
	}
	assertEmptyDir(t, tmp)
}

// TestDemoAsNewUser runs "go run ./cmd/walrec demo" from the repository root, as the README's
// first step does: the full default demo, which must succeed, print its table and leave
// nothing in the temporary directory ($TMPDIR). Its time is logged, not asserted (tests never
// fail on timing; the 10-minute context is a hang detector).
func TestDemoAsNewUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and writes 256 MiB; skipped in -short mode")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		t.Skipf("no go command: %v", err)
	}
	tmp, gotmp := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, gobin, "build", "-o", os.DevNull, "./cmd/walrec")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil { // warm the build cache: time the demo, not the compiler
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, gobin, "run", "./cmd/walrec", "demo")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "GOTMPDIR="+gotmp)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("go run ./cmd/walrec demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	t.Logf("go run ./cmd/walrec demo: %.1fs\n%s", elapsed.Seconds(), out.String())
	if !strings.Contains(out.String(), "  built     demo.db: 256.0 MiB,") || !strings.Contains(out.String(), "  cleanup   removed "+tmp) {
		t.Errorf("unexpected output:\n%s", out.String())
	}
	if errb.Len() > 0 {
		t.Errorf("stderr is not a terminal, so it should be empty (no progress bar): %q", errb.String())
	}
	assertEmptyDir(t, tmp)
}
