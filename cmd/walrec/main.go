// Command walrec runs, inspects and checks the recovery of a streamwal database log.
//
//	walrec demo                 build a sample database, crash it mid-append, recover it
//	walrec verify FILE...       read-only: what would recovery do with each file?
//	walrec recover FILE         the repair a database open does (cut bytes kept in a sidecar)
//	walrec dump FILE...         the records and their ops, up to the first bad one
//	walrec gen FILE             write a log for benchmarks and tests
//	walrec bench FILE           recovery throughput and memory at several parallelisms
//	walrec compact FILE         rewrite the log as the live state (the database's Compact)
//	walrec sidecars FILE        list the sidecars holding cut bytes (--clear deletes them)
//	walrec backup FILE OUT      a hot backup beside a running writer (OUT "-": stdout)
//	walrec restore IN FILE      write a database from a backup (IN "-": stdin), verified
//	walrec salvage FILE --output COPY   every record that verifies, around damage, into a new log
//	walrec get FILE KEY         a key's value now, read-only (no lock)
//	walrec scan FILE            the live pairs in key order (--prefix, --from/--to), read-only
//
// Exit status (exitCodesHelp): 0 success, 1 a finding short of a refusal (a tail recovery
// would cut, a key not there, stretches skipped), 2 refused with the file untouched, 3
// failed (I/O, LOCKED, a usage error), 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM,
// 129 SIGHUP, 141 SIGPIPE), the same number in the report. --json is JSON Lines (jsonHelp).
// Run "walrec COMMAND --help" for each command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// Exit statuses, shared by every command (exitCodesHelp says what each means).
const (
	exitOK      = 0 // success: clean, empty, repaired, written, found, listed, compacted, measured
	exitTail    = 1 // a finding short of a refusal: a tail recovery would cut, a key not there, stretches skipped
	exitRefused = 2 // refused, file untouched: corrupt, not a database, unsupported version, record too large, strict tail, REWRITTEN
	exitError   = 3 // failed: an I/O error (a short read included), LOCKED, IDENTITY, not a regular file, or a usage error
	// 128+N: stopped by signal N (stopCode).
)

// exitCodesHelp is the one exit table: every command's --help ends with it, and the README
// repeats it.
const exitCodesHelp = `Exit status (the same table for every command):
  0    success: clean or empty (verify, dump), repaired or already clean (recover), written
       (gen, backup, restore, salvage with nothing skipped), found (get), listed (scan,
       sidecars), compacted (compact), measured (bench)
  1    a finding, not a failure: a torn or damaged tail that recovery would cut (verify,
       dump), a key that is not there (get), stretches skipped (salvage)
  2    refused, the file untouched: corrupt, not a database, unsupported version, a record
       over the limit, a tail in strict mode; REWRITTEN (backup --since)
  3    failed: an I/O error (a short read included), LOCKED (another process has the
       database open), IDENTITY, a path that is missing or not a regular file, a usage error
  128+N stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP, 141 SIGPIPE (the
       reader of the output went away). The command stops within a second and removes what
       it was still writing (a partial sidecar, copy, backup or generated file); what it had
       finished before the signal (a cut and its sidecar, a compacted log, a generated file,
       removed sidecars) stays, and the report says which: the report's "exit" is 128+N too.
       For SIGPIPE, where stdout is gone, a command that changed something says what on
       stderr; a read-only one says nothing.
  With several FILEs (verify, dump) the status is the worst of theirs: 0 < 1 < 2 < 3 <
  128+N; a signal ends the run, and the files after it get no report.
`

// ---- signals ----

// sigKey is the context key under which mainProcess keeps the number of the signal that
// stopped the command (0 while none has).
type sigKey struct{}

// withSignalState returns ctx carrying a signal slot; set it, then cancel ctx.
func withSignalState(ctx context.Context) (context.Context, *atomic.Int32) {
	n := new(atomic.Int32)
	return context.WithValue(ctx, sigKey{}, n), n
}

// stopSignal is the number of the signal that stopped the command, 0 for none. mainProcess
// records it before it cancels the context, so once ctx is done for a signal it is set.
func stopSignal(ctx context.Context) int {
	if n, ok := ctx.Value(sigKey{}).(*atomic.Int32); ok {
		return int(n.Load())
	}
	return 0
}

// stopCode is the exit status of a command that a canceled ctx stopped: 128+N when signal N
// did, else exitError (a context its caller canceled, as in the in-process tests).
func stopCode(ctx context.Context) int {
	if n := stopSignal(ctx); n != 0 {
		return 128 + n
	}
	return exitError
}

// signalName is "SIGINT" for 2, and so on.
func signalName(n int) string {
	switch syscall.Signal(n) {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return fmt.Sprintf("signal %d", n)
}

// stopped is the signal that stopped the command ("SIGINT"), nil when none did.
func stopped(ctx context.Context) *string {
	if n := stopSignal(ctx); n != 0 {
		return ptr(signalName(n))
	}
	return nil
}

// isEPIPE reports whether err is a write whose reader went away.
func isEPIPE(err error) bool { return errors.Is(err, syscall.EPIPE) }

const mainUsage = `walrec runs, inspects and checks the recovery of a streamwal database log.

Usage:
  walrec demo                 build a sample database, crash it mid-append, recover it
  walrec verify FILE...       read-only: what would recovery do with each file?
  walrec recover FILE         the repair a database open does (cut bytes kept in a sidecar)
  walrec dump FILE...         the records and their ops, up to the first bad one
  walrec gen FILE             write a log for benchmarks and tests
  walrec bench FILE           recovery throughput and memory at several parallelisms
  walrec compact FILE         rewrite the log as the live state (the database's Compact)
  walrec sidecars FILE        list the sidecars holding cut bytes (--clear deletes them)
  walrec backup FILE OUT      a hot backup beside a running writer (OUT "-": stdout)
  walrec restore IN FILE      write a database from a backup (IN "-": stdin), verified
  walrec salvage FILE --output COPY   every record that verifies, around damage, into a new log
  walrec get FILE KEY         a key's value now, read-only (no lock)
  walrec scan FILE            the live pairs in key order (--prefix, --from/--to), read-only

Run "walrec COMMAND --help" for a command's flags, "walrec --version" for the build.
New here? Run "walrec demo".

` + jsonHelp + `
` + exitCodesHelp

type command struct {
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"demo":    {cmdDemo},
	"verify":  {cmdVerify},
	"recover": {cmdRecover},
	"dump":    {cmdDump},
	"gen":     {cmdGen},
	"bench":   {cmdBench},
}

func main() {
	os.Exit(mainProcess(os.Args[1:], os.Stdout, os.Stderr))
}

// mainProcess is the program with its signals: SIGINT, SIGTERM, SIGHUP and SIGPIPE (and a
// write to stdout that fails because its reader went away) record the signal in the
// command's context and then cancel it, so every blocking step returns within a second and
// removes what it was writing. The command itself turns the signal into its exit status,
// 128+N, and puts the same status in its report (stopCode): what the process exits with is
// what the command returns, so the two always agree.
func mainProcess(args []string, stdout, stderr *os.File) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, got := withSignalState(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case s := <-sigs:
			if n, ok := s.(syscall.Signal); ok {
				got.CompareAndSwap(0, int32(n))
			}
			cancel()
		case <-done:
		}
	}()
	out := &pipeWatch{w: stdout, onEPIPE: func() { got.CompareAndSwap(0, int32(syscall.SIGPIPE)); cancel() }}
	code := runContext(ctx, args, out, stderr)
	close(done)
	wg.Wait()
	return code
}

// pipeWatch is stdout: a write that fails with EPIPE (the reader is gone: "walrec demo |
// head -3") stops the command as SIGPIPE would, but through its context, so it cleans up.
type pipeWatch struct {
	w       io.Writer
	onEPIPE func()
}

func (p *pipeWatch) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		p.onEPIPE()
	}
	return n, err
}

// Fd lets isTerminal see the file underneath.
func (p *pipeWatch) Fd() uintptr {
	if f, ok := p.w.(*os.File); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// run is the whole program minus the process: tests call it directly.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return exitError
	}
	switch args[0] {
	case "--version", "-version", "version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "walrec: unexpected argument %s after %s\n", quoteName(args[1]), args[0])
			return exitError
		}
		return writeOut(ctx, stdout, stderr, "version", versionText())
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			if _, ok := commands[args[1]]; ok {
				return commands[args[1]].run(ctx, []string{"--help"}, stdout, stderr)
			}
			fmt.Fprintf(stderr, "walrec: no help for unknown command %q; run \"walrec --help\"\n", args[1])
			return exitError
		}
		return writeOut(ctx, stdout, stderr, "help", mainUsage)
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "walrec: unknown command %q; run \"walrec --help\"\n", args[0])
		return exitError
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// newFlags makes a command's flag set.
func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet("walrec "+name, flag.ContinueOnError)
}

// hidden flags are parsed but left out of --help (the tests' knobs).
var hiddenFlags = map[string]bool{"tmpdir": true, "demo-size": true, "demo-seed": true}

// printDefaults lists the flags that are not hidden, spelled as usage spells them ("--json";
// a single dash works too).
func printDefaults(fs *flag.FlagSet, w io.Writer) {
	fs.VisitAll(func(f *flag.Flag) {
		if hiddenFlags[f.Name] {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}

// writeOut writes text to stdout; a failed write (a full disk) is an error, and one whose
// reader went away is SIGPIPE's 141, said by nobody (there is nothing else to say).
func writeOut(ctx context.Context, stdout, stderr io.Writer, what, text string) int {
	if _, err := io.WriteString(stdout, text); err != nil {
		if isEPIPE(err) {
			return stopCode(ctx)
		}
		fmt.Fprintf(stderr, "walrec %s: cannot write to stdout: %v\n", what, err)
		return exitError
	}
	return exitOK
}

// versionText is "walrec --version": the module version, the commit and the Go release it was
// built from, as the build recorded them. A build that recorded no commit ("go run", or
// -buildvcs=false) names the commit of the source tree it was built from, read with git at
// run time and said to be so, or says that the commit is unknown.
func versionText() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "walrec (no build information)\n"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " with uncommitted changes"
			}
		}
	}
	out := fmt.Sprintf("walrec %s (%s)", v, bi.Main.Path)
	switch {
	case rev != "":
		out += fmt.Sprintf(", commit %s", rev)
		if when != "" {
			out += " of " + when
		}
		out += dirty
	default:
		if rev, dirty, ok := sourceCommit(); ok {
			out += fmt.Sprintf(", commit %s%s (read from its source tree's git at run time: the build recorded none)", rev, dirty)
		} else {
			out += ", commit unknown (the build recorded none, as \"go run\" and -buildvcs=false do, and its source tree is not a git checkout here)"
		}
	}
	return out + ", built with " + bi.GoVersion + "\n"
}

// sourceCommit is the commit of the git checkout this file was compiled from, when that
// directory is still here (as under "go run"), and whether the checkout has changes.
func sourceCommit() (rev, dirty string, ok bool) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", "", false // -trimpath: no directory to look in
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(dir); err != nil {
		return "", "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	rev = strings.TrimSpace(string(b))
	if err != nil || len(rev) < 40 {
		return "", "", false
	}
	if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		dirty = " with uncommitted changes"
	}
	return rev, dirty, true
}

// outFlags are --quiet, --progress and --no-progress, which every command that reports takes.
type outFlags struct {
	quiet, noProgress bool
	mode              progressFlag
	cmd               string // the command's name, for progress lines
}

func (o *outFlags) register(fs *flag.FlagSet) {
	o.registerQuiet(fs)
	o.registerProgress(fs)
}

// registerQuiet is --quiet alone, for the commands that show no progress (their work is
// short whatever the file: sidecars, backup, restore).
func (o *outFlags) registerQuiet(fs *flag.FlagSet) {
	o.cmd = strings.TrimPrefix(fs.Name(), "walrec ")
	o.mode = progNone
	fs.BoolVar(&o.quiet, "quiet", false, "print nothing on success: the exit status says it (failures still get one line on stderr)")
}

func (o *outFlags) registerProgress(fs *flag.FlagSet) {
	o.cmd = strings.TrimPrefix(fs.Name(), "walrec ")
	o.mode = progAuto
	fs.Var(&o.mode, "progress", "how to show progress on stderr, a `MODE`: auto (a bar on a terminal; elsewhere a line every 10 s once a step has run\n10 s), bar, plain (a line every 10 s), json (a JSON line every 2 s: offset, size, elapsed), none")
	fs.BoolVar(&o.noProgress, "no-progress", false, "no progress at all (--progress none)")
}

// progress starts the progress of a step (desc) on file, or returns nil for none.
func (o *outFlags) progress(stderr io.Writer, desc, file string) *progress {
	mode := string(o.mode)
	switch {
	case o.noProgress || mode == progNone:
		return nil
	case mode == progAuto && o.quiet:
		return nil
	case mode == progAuto && isTerminal(stderr):
		mode = progBar
	case mode == progAuto:
		mode = progPlain
	}
	return newProgress(stderr, mode, o.cmd, desc, file)
}

// barOnly is whether progress would be a bar (dump draws none on the terminal it prints to).
func (o *outFlags) barOnly(stderr io.Writer) bool {
	return o.mode == progBar || o.mode == progAuto && isTerminal(stderr)
}

// quoteName is a file name as printed for a person: as it is when it is printable text, else
// Go-quoted ("bad\xff\nname"), so that a newline or an invalid byte can neither break a line
// nor be mistaken for something else.
func quoteName(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// errText is err without the path a *fs.PathError repeats (the caller prints it quoted).
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// oneOrMore as parseFlags's npos: one FILE or more (verify, dump).
const oneOrMore = -1

// parseFlags parses args, allowing flags after positional arguments ("verify FILE --json"),
// and checks that there are npos positional arguments (oneOrMore: at least one). When the
// command should stop there
// (--help: usage on stdout, status 0; a usage error: one line on stderr, status 3) it
// returns ok = false and the status.
func parseFlags(ctx context.Context, fs *flag.FlagSet, usage string, args []string, npos int, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	var msg strings.Builder
	fs.SetOutput(&msg)
	fs.Usage = func() {}
	fail := func(format string, a ...any) ([]string, int, bool) {
		fmt.Fprintf(stderr, "%s: %s\nrun \"%s --help\" for usage\n", fs.Name(), fmt.Sprintf(format, a...), fs.Name())
		return nil, exitError, false
	}
	for {
		if len(args) > 0 && args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			b.WriteString(usage)
			visible := false
			fs.VisitAll(func(f *flag.Flag) { visible = visible || !hiddenFlags[f.Name] })
			if visible {
				b.WriteString("\nFlags:\n")
				printDefaults(fs, &b)
			}
			return nil, writeOut(ctx, stdout, stderr, "help", b.String()), false
		}
		if err != nil {
			return fail("%s", strings.Replace(strings.TrimSpace(strings.SplitN(msg.String(), "\n", 2)[0]), "defined: -", "defined: --", 1))
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case npos == oneOrMore && len(pos) == 0:
		return fail("missing FILE argument")
	case npos == oneOrMore:
	case len(pos) > npos && npos == 0:
		return fail("unexpected argument %q", pos[0])
	case len(pos) < npos:
		return fail("missing FILE argument")
	case len(pos) > npos:
		return fail("too many arguments: %s", strings.Join(pos, " "))
	}
	return pos, exitOK, true
}

// ---- sizes ----

// sizeFlag is a byte count written as 4096, 4KiB, 64MiB, 1GiB, 100MB (decimal), 64M (binary).
type sizeFlag int64

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (want a byte count like 4096, 4KiB, 64MiB, 1GiB)", v)
	}
	return n * mult, nil
}

// formatSize writes n in the largest binary unit that keeps it exact, or in bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// mib is n in MiB with one decimal, for tables.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
