//go:build unix

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// child is walrec running as a separate process (the test binary, see TestMain).
type child struct {
	cmd    *exec.Cmd
	stderr *bufio.Reader
	errbuf bytes.Buffer // stderr after the pause line
	done   chan struct{}
	code   int
	ended  time.Time
}

// startWalrec starts walrec with args in a child process, parked at pause (if not "").
func startWalrec(t *testing.T, pause string, env []string, stdout io.Writer, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), "WALREC_TEST_MAIN=1", "WALREC_TEST_PAUSE="+pause), env...)
	cmd.Stdout = stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: bufio.NewReader(pr), done: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			cmd.Process.Kill()
			<-c.done
		}
	})
	if pause != "" {
		line, err := c.stderr.ReadString('\n')
		if err != nil || !strings.Contains(line, "paused at "+pause) {
			rest, _ := io.ReadAll(c.stderr)
			go c.wait()
			t.Fatalf("the child did not pause at %s: %q %v\n%s", pause, line, err, rest)
		}
	}
	go c.wait()
	return c
}

func (c *child) wait() {
	io.Copy(&c.errbuf, c.stderr)
	err := c.cmd.Wait()
	c.ended = time.Now()
	c.code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		c.code = ee.ExitCode()
	} else if err != nil {
		c.code = -1
	}
	close(c.done)
}

// signal sends sig and waits for the child to exit; it returns how long that took. The
// bound is generous (a hang, not slowness, fails the test); the time is logged.
func (c *child) signal(t *testing.T, sig syscall.Signal) time.Duration {
	t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return c.waitExit(t, start)
}

func (c *child) waitExit(t *testing.T, start time.Time) time.Duration {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not stop within 30 s")
	}
	d := c.ended.Sub(start)
	t.Logf("stopped %v after the signal, exit %d, stderr %q", d.Round(time.Millisecond), c.code, c.errbuf.String())
	return d
}

// TestSignalsStopGen: Ctrl-C, SIGTERM and SIGHUP stop gen in the middle of a 4 MiB record;
// it removes the file it was writing and exits 128+N. With --force over an existing file, that
// file is left as it was and the half-written replacement is removed.
func TestSignalsStopGen(t *testing.T) {
	for _, tc := range []struct {
		sig   syscall.Signal
		code  int
		force bool
	}{
		{syscall.SIGINT, 130, false},
		{syscall.SIGTERM, 143, false},
		{syscall.SIGHUP, 129, false},
		{syscall.SIGINT, 130, true},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "big.db")
			args := []string{"gen", path, "--size", "256MiB", "--record-size", "4MiB"}
			old := []byte("an older file that --force must not lose unless gen completes")
			if tc.force {
				if err := os.WriteFile(path, old, 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--force")
			}
			c := startWalrec(t, "gen", nil, io.Discard, args...)
			c.signal(t, tc.sig)
			if c.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", c.code, tc.code, c.errbuf.String())
			}
			if !strings.Contains(c.errbuf.String(), "stopped before the end (the partial file was removed") {
				t.Fatalf("stderr %q", c.errbuf.String())
			}
			if tc.force {
				assertFile(t, path, old)
				if ents, _ := os.ReadDir(dir); len(ents) != 1 {
					t.Fatalf("left behind: %v", ents)
				}
			} else {
				assertEmptyDir(t, dir)
			}
		})
	}
}

// TestSignalsStopDemo: SIGHUP (a closed terminal) and SIGTERM stop the demo after it has
// built its sample; it removes its temporary directory and exits 129 / 143.
func TestSignalsStopDemo(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGHUP, 129}, {syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			c := startWalrec(t, "demo-built", nil, io.Discard, "demo", "--demo-size", "4MiB", "--tmpdir", tmp)
			if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
				t.Fatalf("the demo has not made its directory yet: %v", ents)
			}
			c.signal(t, tc.sig)
			if c.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", c.code, tc.code, c.errbuf.String())
			}
			if !strings.Contains(c.errbuf.String(), fmt.Sprintf("walrec demo: stopped by %s (exit %d) (the temporary directory", signalName(int(tc.sig)), tc.code)) {
				t.Fatalf("stderr %q", c.errbuf.String())
			}
			assertEmptyDir(t, tmp)
		})
	}
}

// TestDemoClosedPipe: "walrec demo | head -3": once the reader is gone, the demo's next write
// fails (SIGPIPE); it stops, removes its directory and exits 141.
func TestDemoClosedPipe(t *testing.T) {
	tmp := t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "demo", "--demo-size", "4MiB", "--tmpdir", tmp)
	cmd.Env = append(os.Environ(), "WALREC_TEST_MAIN=1", "WALREC_TEST_PAUSE=demo-built", "WALREC_TEST_RESUME=stdin")
	cmd.Stdout, cmd.Stdin = pw, stdinR
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	stdinR.Close()
	// head -3: read three lines, then go away.
	r := bufio.NewReader(pr)
	for range 3 {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	pr.Close()
	stdinW.Close() // the demo, parked after its build, goes on to print, into a closed pipe
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 141 {
		t.Fatalf("exit %v, want 141; stderr %q", err, errb.String())
	}
	assertEmptyDir(t, tmp)
}

// TestGenRefusesFIFOPromptly: gen on a FIFO, even with --force, neither blocks nor removes it.
func TestGenRefusesFIFOPromptly(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	c := startWalrec(t, "", nil, io.Discard, "gen", fifo, "--force", "--size", "64KiB")
	c.waitExit(t, time.Now())
	if c.code != exitError || !strings.Contains(c.errbuf.String(), "is a FIFO, not a regular file") {
		t.Fatalf("exit %d, stderr %q", c.code, c.errbuf.String())
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO is gone or changed: %v %v", fi, err)
	}
}
