package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// verify - reads standard input as a stream and reports what verify of a file of the same
// bytes reports: the same outcome, code, offset and exit, for a clean log, a cut one and a
// corrupt one.
func TestVerifyStandardInput(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.wal")
	corrupt := filepath.Join(dir, "corrupt.wal")
	walrec(t, "gen", clean, "--size", "2MiB", "--quiet").mustExit(t, exitOK, "gen")
	walrec(t, "gen", corrupt, "--size", "2MiB", "--damage", "corrupt", "--quiet").mustExit(t, exitOK, "gen")
	b := readAll(t, clean)
	cut := filepath.Join(dir, "cut.wal")
	if err := os.WriteFile(cut, b[:len(b)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(r io.Reader) { stdin = r }(stdin)
	for _, path := range []string{clean, cut, corrupt} {
		file := walrec(t, "verify", path, "--json")
		stdin = bytes.NewReader(readAll(t, path))
		stream := walrec(t, "verify", "-", "--json", "--parallelism", "2")
		f, s := decodeJSON(t, file.stdout), decodeJSON(t, stream.stdout)
		for _, k := range []string{"outcome", "code", "offset", "truncate_bytes", "records", "ops", "end", "size", "exit"} {
			if f[k] != s[k] {
				t.Errorf("%s: %s is %v from the file, %v from standard input", filepath.Base(path), k, f[k], s[k])
			}
		}
		if file.code != stream.code {
			t.Errorf("%s: exit %d from the file, %d from standard input", filepath.Base(path), file.code, stream.code)
		}
	}
}
