package db

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/streamwal/recovery"
)

// A preallocated or sparse tail (truncate -s +N) becomes a sidecar that reads back byte for
// byte but whose zeros take no disk space.
func TestSidecarKeepsZerosAsHoles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.wal")
	data := append(bytes.Repeat([]byte{7}, 3000), make([]byte, 64<<20)...)
	data = append(data, 1, 2, 3) // a non-zero byte after the zeros, then another zero tail
	data = append(data, make([]byte, 5<<20)...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cut := recovery.Truncation{Offset: 1000, Bytes: int64(len(data)) - 1000, Reason: recovery.ReasonDamagedTail}
	name, holes, err := WriteSidecar(context.Background(), nil, path, bytes.NewReader(data), cut, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, data[1000:]) {
		t.Fatalf("sidecar %s does not hold the cut bytes (%v)", name, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	if holes < 60<<20 || st.Blocks*512 > 8<<20 {
		t.Fatalf("%d bytes kept as holes, %d bytes on disk for a %d-byte sidecar", holes, st.Blocks*512, len(got))
	}
	// The same cut again (a second crash at the same offset) reuses it.
	again, _, err := WriteSidecar(context.Background(), nil, path, bytes.NewReader(data), cut, "")
	if err != nil || again != name {
		t.Fatalf("second write: %q, %v; want %q reused", again, err, name)
	}
}

type tinyFS struct{ osFS }

func (tinyFS) FreeSpace(string) (int64, error) { return 1 << 20, nil }

// Bytes that would not fit are refused before the disk fills, and nothing is left behind.
func TestSidecarRefusedWhenItWouldNotFit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.wal")
	data := append(bytes.Repeat([]byte{9}, 3<<20), make([]byte, 8<<20)...) // 3 MiB of data
	cut := recovery.Truncation{Offset: 0, Bytes: int64(len(data)), Reason: recovery.ReasonDamagedTail}
	_, _, err := writeSidecar(context.Background(), tinyFS{}, path, bytes.NewReader(data), cut, dir)
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, recovery.ErrIO) {
		t.Fatalf("want ErrNoSpace as an IO_ERROR, got %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	// Zeros do not count: 8 MiB of them after 512 KiB of data fits in 1 MiB.
	data = append(bytes.Repeat([]byte{9}, 512<<10), make([]byte, 8<<20)...)
	cut.Bytes = int64(len(data))
	if _, _, err := writeSidecar(context.Background(), tinyFS{}, path, bytes.NewReader(data), cut, dir); err != nil {
		t.Fatal(err)
	}
}
