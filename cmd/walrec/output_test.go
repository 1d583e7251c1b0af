//go:build unix

package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/streamwal/recovery"
)

// failWriter fails every write, as stdout on a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestStdoutFailures: a report that cannot be written is an error (gen >/dev/full), and
// bench --json on a missing file still prints its one JSON line.
func TestStdoutFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	var errb bytes.Buffer
	if code := run([]string{"gen", path, "--size", "64KiB"}, failWriter{}, &errb); code != exitError || !strings.Contains(errb.String(), "cannot write the report") {
		t.Fatalf("gen into a full stdout: exit %d, %q", code, errb.String())
	}
	for _, args := range [][]string{{"verify", path}, {"verify", path, "--json"}, {"dump", path}, {"bench", path, "--runs", "1"}, {"--version"}, {"--help"}} {
		errb.Reset()
		if code := run(args, failWriter{}, &errb); code != exitError {
			t.Fatalf("%v into a full stdout: exit %d, %q", args, code, errb.String())
		}
	}
	r := walrec(t, "bench", filepath.Join(dir, "missing.wal"), "--json").mustExit(t, 3, "bench --json of a missing file")
	if j := decodeJSON(t, r.stdout); j.str(t, "outcome") != "io_error" || j.str(t, "detail") != "no such file or directory" {
		t.Fatalf("%v", j)
	}
}

// TestFailureSaidOnce: a failure reaches the person once. On a terminal the report says it;
// redirected, the one-line error goes to stderr too; --json writes only JSON; --quiet only
// the line.
func TestFailureSaidOnce(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "corrupt"})
	redirected := walrec(t, "verify", path).mustExit(t, 2, "verify")
	if len(lines(redirected.stderr)) != 1 {
		t.Fatalf("redirected stdout: stderr %q", redirected.stderr)
	}
	if r := walrec(t, "verify", path, "--json").mustExit(t, 2, "verify --json"); r.stderr != "" {
		t.Fatalf("--json: stderr %q", r.stderr)
	}
	r := walrec(t, "verify", path, "--quiet").mustExit(t, 2, "verify --quiet")
	if r.stdout != "" || r.stderr != redirected.stderr {
		t.Fatalf("--quiet: %+v", r)
	}
	if r := walrec(t, "verify", filepath.Join(dir, "missing.db"), "--quiet").mustExit(t, 3, "verify --quiet"); r.stdout != "" || len(lines(r.stderr)) != 1 {
		t.Fatalf("--quiet, missing: %+v", r)
	}

	var out bytes.Buffer
	old := isTerminal
	isTerminal = func(w io.Writer) bool { return w == io.Writer(&out) }
	t.Cleanup(func() { isTerminal = old })
	var errb bytes.Buffer
	if code := run([]string{"verify", path}, &out, &errb); code != 2 || errb.Len() != 0 || out.String() != redirected.stdout {
		t.Fatalf("terminal: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	// Clean: --quiet says nothing at all.
	clean, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	if r := walrec(t, "verify", clean, "--quiet").mustExit(t, 0, "verify --quiet"); r.stdout != "" || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
	if r := walrec(t, "gen", filepath.Join(dir, "q.db"), "--size", "64KiB", "--quiet").mustExit(t, 0, "gen --quiet"); r.stdout != "" || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
}

// TestNoProgress: --no-progress draws no bar even on a terminal.
func TestNoProgress(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.db")
	oldTerm, oldDelay := isTerminal, progressDelay
	isTerminal, progressDelay = func(io.Writer) bool { return true }, 0
	t.Cleanup(func() { isTerminal, progressDelay = oldTerm, oldDelay })
	if r := walrec(t, "gen", path, "--size", "4MiB", "--record-size", "512", "--no-progress").mustExit(t, 0, "gen"); r.stderr != "" {
		t.Fatalf("gen --no-progress drew %q", r.stderr)
	}
	if r := walrec(t, "verify", path, "--no-progress", "--parallelism", "1").mustExit(t, 0, "verify"); r.stderr != "" {
		t.Fatalf("verify --no-progress drew %q", r.stderr)
	}
	if r := walrec(t, "verify", path, "--parallelism", "1").mustExit(t, 0, "verify"); !strings.Contains(r.stderr, "verify") {
		t.Fatalf("without --no-progress, no bar: %q", r.stderr)
	}
}

// TestVersion: walrec --version names the module and the Go release.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version", "-version"} {
		r := walrec(t, arg).mustExit(t, 0, arg)
		if !strings.HasPrefix(r.stdout, "walrec ") || !strings.Contains(r.stdout, "built with go") || len(lines(r.stdout)) != 1 {
			t.Fatalf("%s: %q", arg, r.stdout)
		}
	}
	walrec(t, "--version", "extra").mustExit(t, 3, "--version extra")

	// A test binary, like "go run", records no commit: the version names the source tree's,
	// read with git and said to be so, or says it is unknown; never nothing.
	r := walrec(t, "--version")
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if !strings.Contains(r.stdout, ", commit "+strings.TrimSpace(string(head))) || !strings.Contains(r.stdout, "read from its source tree's git at run time") {
			t.Fatalf("--version without a recorded commit: %q, want commit %s", r.stdout, head)
		}
	} else if !strings.Contains(r.stdout, ", commit unknown (") {
		t.Fatalf("--version without git: %q", r.stdout)
	}
}

// TestJSONFieldsAlwaysPresent: every field of the report is present, null when unset.
func TestJSONFieldsAlwaysPresent(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	j := decodeJSON(t, walrec(t, "verify", path, "--json").stdout)
	for _, k := range []string{"detail", "hint", "code", "offset", "error", "file_hex"} {
		if v, ok := j[k]; !ok || v != nil {
			t.Fatalf("%s: %v (present %v), want null", k, v, ok)
		}
	}
	j = decodeJSON(t, walrec(t, "recover", path, "--json").stdout)
	for _, k := range []string{"sidecar", "sidecar_hex", "output", "output_hex", "detail", "hint"} {
		if v, ok := j[k]; !ok || v != nil {
			t.Fatalf("recover %s: %v (present %v), want null", k, v, ok)
		}
	}
}

// TestNames: a name that is not UTF-8 or holds a newline is quoted in text and exact (in
// hex) in JSON, so a script finds the sidecar.
func TestNames(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	odd := filepath.Join(dir, "bad\xff\xfe\nname.db")
	if err := os.Rename(path, odd); err != nil {
		t.Skip("the filesystem refuses the name:", err)
	}
	r := walrec(t, "verify", odd).mustExit(t, 1, "verify")
	if strings.Contains(r.stdout, "\xff") || !strings.Contains(r.stdout, `bad\xff\xfe\nname.db`) {
		t.Fatalf("%q", r.stdout)
	}
	j := decodeJSON(t, walrec(t, "recover", odd, "--json").mustExit(t, 0, "recover").stdout)
	fh, err := hex.DecodeString(j.str(t, "file_hex"))
	if err != nil || string(fh) != odd {
		t.Fatalf("file_hex %v", j)
	}
	sh, err := hex.DecodeString(j.str(t, "sidecar_hex"))
	if err != nil {
		t.Fatal(err)
	}
	assertFile(t, string(sh), data[at:])
	r = walrec(t, "verify", filepath.Join(dir, "missing\nfile.db")).mustExit(t, 3, "verify")
	if len(lines(r.stderr)) != 1 || len(lines(r.stdout)) != 3 {
		t.Fatalf("a newline in a name broke a line: %q %q", r.stdout, r.stderr)
	}
}

// TestReportFromResult: the report takes the refused cut of a strict refusal and the decided
// cut of a failed repair from Result.Truncation, without a second recovery.
func TestReportFromResult(t *testing.T) {
	tr := &recovery.Truncation{Offset: 100, Bytes: 18, Reason: recovery.ReasonTornTail, Detail: "record runs past the end of the file"}
	res := recovery.Result{Layout: recovery.LayoutV1, Size: 118, Records: 3, End: 100, Truncation: tr}
	strict := &recovery.Error{Code: recovery.CodeTailDamage, Offset: 100, Detail: "record runs past the end of the file (torn_tail)"}
	r := newReport("x.db", recovery.Strict, res, strict)
	if r.Outcome != "torn_tail" || r.Exit != exitRefused || r.TruncateBytes != 0 || *r.Code != "TAIL_DAMAGE" || !strings.Contains(r.Hint, "--mode strict") {
		t.Fatalf("strict: %+v", r)
	}
	hook := fmt.Errorf("recovery: before cutting: %w", &recovery.Error{Code: recovery.CodeIO, Offset: 100, Detail: "cannot create the sidecar", Err: syscall.EACCES})
	r = newReport("x.db", recovery.Tolerate, res, hook)
	if r.Outcome != outIO || r.Exit != exitError || r.TruncateBytes != 18 || *r.Offset != 100 || r.Size != 118 || *r.Layout != "v1" || r.Records != 3 ||
		!strings.Contains(r.Detail, "permission denied") {
		t.Fatalf("failed hook: %+v", r)
	}
	var b strings.Builder
	writeHuman(&b, &r, &recoverReport{report: r})
	if !strings.Contains(b.String(), "recovery had decided to cut the last 18 bytes; nothing was cut, the file is untouched") {
		t.Fatalf("%s", b.String())
	}
	// The cut was made but its sync failed: the report says the bytes were cut.
	res.Truncated = true
	syncErr := &recovery.Error{Code: recovery.CodeIO, Offset: 100, Detail: "the file was cut but the sync after it failed", Err: syscall.EIO}
	r = newReport("x.db", recovery.Tolerate, res, syncErr)
	b.Reset()
	writeHuman(&b, &r, &recoverReport{report: r, Truncated: true})
	if r.Exit != exitError || !strings.Contains(b.String(), "the last 18 bytes were cut, but the cut may not be durable; run walrec recover again") {
		t.Fatalf("%s", b.String())
	}
}
