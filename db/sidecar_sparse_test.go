//go:build unix

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
	"github.com/streamwal/recovery/format"
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

// lazyGrowFS's files ignore a Truncate that would grow them (and say nothing): the sidecar must
// still hold every byte, zeros written out, and never pass a short copy for the sidecar.
type lazyGrowFS struct{ osFS }

type lazyGrowFile struct{ File }

func (l lazyGrowFS) OpenFile(path string, mode OpenMode) (File, error) {
	f, err := l.osFS.OpenFile(path, mode)
	if err != nil {
		return nil, err
	}
	return lazyGrowFile{f}, nil
}

func (f lazyGrowFile) Truncate(size int64) error {
	if cur, err := f.File.Size(); err == nil && size > cur {
		return nil // claims success, grows nothing
	}
	return f.File.Truncate(size)
}

func TestSidecarOnAFileThatDoesNotGrow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.wal")
	data := append(append(bytes.Repeat([]byte{5}, 100), make([]byte, 2<<20)...), 1, 2, 3)
	cut := recovery.Truncation{Offset: 0, Bytes: int64(len(data)), Reason: recovery.ReasonDamagedTail}
	name, holes, err := writeSidecar(context.Background(), lazyGrowFS{}, path, bytes.NewReader(data), cut, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name); !bytes.Equal(got, data) || holes != 0 {
		t.Fatalf("sidecar holds %d bytes (want %d), %d as holes", len(got), len(data), holes)
	}
}

// A nonsense truncation is a typed error, not a panic.
func TestWriteSidecarRefusesNonsense(t *testing.T) {
	for _, cut := range []recovery.Truncation{{Offset: 0, Bytes: -1}, {Offset: -5, Bytes: 3}, {Offset: 1 << 62, Bytes: 1 << 62}} {
		if _, _, err := WriteSidecar(context.Background(), nil, filepath.Join(t.TempDir(), "x"), bytes.NewReader(nil), cut, ""); !errors.Is(err, recovery.ErrInvalidArgument) {
			t.Fatalf("%+v: want INVALID_ARGUMENT, got %v", cut, err)
		}
	}
}

// An invalid WithAutoCompact is refused before recovery may cut anything.
func TestAutoCompactCheckedBeforeAnyCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.wal")
	log := append(format.AppendRecord(format.FileHeader[:], format.LayoutV1, format.AppendSet(nil, []byte("k"), []byte("v"))), 0, 0, 0, 9, 1)
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []float64{0.5, 1, -2} {
		if _, err := Open(path, WithAutoCompact(m, nil)); !errors.Is(err, recovery.ErrInvalidArgument) {
			t.Fatalf("WithAutoCompact(%v): want INVALID_ARGUMENT, got %v", m, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, log) {
			t.Fatalf("WithAutoCompact(%v): the file changed", m)
		}
	}
}

// A compaction stopped by its context removes its new file and leaves the old log in use,
// whole.
func TestCompactContextCanceled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.wal")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	val := bytes.Repeat([]byte{1}, 100<<10)
	for i := range 40 { // 4 MiB of pairs: several compacted records
		if err := d.Update(func(tx *Tx) error { return tx.Set([]byte{byte(i)}, val) }); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.CompactContext(ctx); !errors.Is(err, recovery.ErrCanceled) {
		t.Fatalf("want CANCELED, got %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the log changed")
	}
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Fatalf("the new file was left behind: %v", err)
	}
	if err := d.Update(func(tx *Tx) error { return tx.Set([]byte("after"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
}
