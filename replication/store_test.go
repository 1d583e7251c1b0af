package replication

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func createSnapshot(t *testing.T, s *SnapshotStore, term, index uint64, data []byte) string {
	t.Helper()
	sink, err := s.Create(1, index, term, raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil { // raft closes after Persist did
		t.Fatalf("second close: %v", err)
	}
	return sink.ID()
}

// The store lists snapshots newest first (term, then index), keeps the newest retain, opens one
// as the bytes written with its metadata, and leaves nothing of a canceled one or of one a
// crash left half written.
func TestSnapshotStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "1-5-99.tmp"), 0o755); err != nil { // a crash's leftover
		t.Fatal(err)
	}
	s, err := NewSnapshotStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("a partial snapshot was kept: %v", names)
	}
	createSnapshot(t, s, 1, 10, []byte("ten"))
	id2 := createSnapshot(t, s, 2, 5, []byte("term two"))
	id3 := createSnapshot(t, s, 2, 7, []byte("term two, later"))
	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range metas {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{id3, id2}) || len(dirNames(t, dir)) != 2 {
		t.Fatalf("listed %v (want %v), on disk %v", ids, []string{id3, id2}, dirNames(t, dir))
	}
	m, rc, err := s.Open(id3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "term two, later" || m.Size != int64(len(b)) || m.Index != 7 || m.Term != 2 || len(m.Configuration.Servers) != 1 {
		t.Fatalf("open: %q %+v %v", b, m, err)
	}

	sink, err := s.Create(1, 8, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write([]byte("abandoned"))
	if err := sink.Cancel(); err != nil {
		t.Fatal(err)
	}
	if len(dirNames(t, dir)) != 2 {
		t.Fatalf("after a cancel: %v", dirNames(t, dir))
	}

	// A file whose size is not its metadata's is refused at open (Open reads nothing else).
	if err := os.WriteFile(filepath.Join(dir, id3, stateFile), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(id3); err == nil {
		t.Fatal("opened a snapshot of the wrong size")
	}
	for _, bad := range []string{"", "..", "../x", id3 + "/.."} {
		if _, _, err := s.Open(bad); err == nil {
			t.Fatalf("opened %q", bad)
		}
	}
}

// A snapshot written through the store's sink by the FSM's Persist installs from the store.
func TestSnapshotStoreCarriesAnFSMSnapshot(t *testing.T) {
	a := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, a, 1, 40)
	s, err := NewSnapshotStore(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink, err := s.Create(1, 40, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	_, rc, err := s.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	b := openFSM(t, t.TempDir(), FSMOptions{})
	if err := b.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dump(t, a), dump(t, b)) {
		t.Fatal("the installed state differs")
	}
}
