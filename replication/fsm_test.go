package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/walerr"
)

// A command decodes to the ops it was encoded from; the classes keep clients off the reserved
// keys and the node on them; and no truncation or single-byte change of a command makes the
// decoder panic or accept bytes past the end.
func TestCommandEncoding(t *testing.T) {
	ops := []Op{set("a", "1"), del("b"), appendOp("c", ""), set("", "empty key")}
	b := cmd(t, ops...)
	c, err := decodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.class != classUser || len(c.ops) != len(ops) {
		t.Fatalf("decoded %+v", c)
	}
	for i, op := range c.ops {
		if op.Kind != ops[i].Kind || !bytes.Equal(op.Key, ops[i].Key) || !bytes.Equal(op.Value, ops[i].Value) || (op.Kind == OpDelete) != (op.Value == nil) {
			t.Fatalf("op %d: %+v, want %+v", i, op, ops[i])
		}
	}
	refused := map[string]func() error{
		"no ops":       func() error { _, err := EncodeCommand(); return err },
		"reserved key": func() error { _, err := EncodeCommand(set(ReservedPrefix+"x", "v")); return err },
		"unknown kind": func() error { _, err := EncodeCommand(Op{Kind: 9, Key: []byte("k")}); return err },
		"delete with value": func() error {
			_, err := EncodeCommand(Op{Kind: OpDelete, Key: []byte("k"), Value: []byte{}})
			return err
		},
		"meta on a user key": func() error { _, err := encodeMeta(set("user", "v")); return err },
		"too large": func() error {
			_, err := EncodeCommand(Op{Kind: OpSet, Key: []byte("k"), Value: make([]byte, MaxCommandBytes)})
			return err
		},
	}
	for name, f := range refused {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := EncodeCommand(set(ReservedPrefix+"x", "v")); !errors.Is(err, ErrReservedKey) {
		t.Errorf("reserved key: %v, want ErrReservedKey", err)
	}
	for n := range len(b) {
		if _, err := decodeCommand(b[:n]); err == nil {
			t.Fatalf("a command cut to %d of %d bytes decoded", n, len(b))
		}
	}
	if _, err := decodeCommand(append(slices.Clone(b), 0)); err == nil {
		t.Fatal("a command with a byte after its last op decoded")
	}
	for i := range b {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			d := slices.Clone(b)
			d[i] ^= x
			_, _ = decodeCommand(d) // must not panic
		}
	}
	meta, err := encodeMeta(set(memberKey+"n1", "127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := decodeCommand(meta); err != nil || c.class != classMeta {
		t.Fatalf("meta command: %+v %v", c, err)
	}
	id := reqID{1, 2, 3, 15: 16}
	bar, err := encode(classBarrier, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := decodeCommand(bar); err != nil || c.class != classBarrier || c.id != id || len(c.ops) != 0 {
		t.Fatalf("barrier: %+v %v", c, err)
	}
	if _, err := encode(classBarrier, id, []Op{set("a", "b")}); err == nil {
		t.Fatal("a barrier with ops encoded")
	}
	withOps := slices.Clone(b)
	withOps[1] = classBarrier
	if _, err := decodeCommand(withOps); err == nil {
		t.Fatal("a barrier with ops decoded")
	}
	userOnReserved := slices.Clone(meta)
	userOnReserved[1] = classUser // a client's command on a reserved key, forged
	if _, err := decodeCommand(userOnReserved); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("forged user command on a reserved key: %v", err)
	}
}

// Apply commits each batch with its raft index, one transaction for the batch, and a node that
// replays its log after a restart (raft starts again from its last snapshot, which the
// database is usually ahead of) applies nothing twice: the appends below would show it.
// Broken (the index check removed from ApplyBatch), x ends with 12 a's instead of 7.
func TestApplyRecordsIndexAndNeverAppliesTwice(t *testing.T) {
	dir := t.TempDir()
	f := openFSM(t, dir, FSMOptions{})
	var logs []*raft.Log
	for i := uint64(1); i <= 7; i++ {
		logs = append(logs, entry(i, cmd(t, appendOp("x", "a"), set(fmt.Sprint("k", i), fmt.Sprint(i)))))
	}
	logs[2] = &raft.Log{Index: 3, Term: 1, Type: raft.LogConfiguration} // not a command: nil, no change
	resp := f.ApplyBatch(logs[:5])
	if len(resp) != 5 || slices.ContainsFunc(resp, func(r any) bool { return r != nil }) {
		t.Fatalf("responses %v", resp)
	}
	if st := f.Stats(); st.Applied != 5 || st.Transactions != 1 || st.Commands != 4 {
		t.Fatalf("after one batch of 5 entries (4 commands): %+v", st)
	}
	if got := userState(t, f)["x"]; got != "aaaa" {
		t.Fatalf("x = %q after 4 appends", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f = openFSM(t, dir, FSMOptions{})
	if f.AppliedIndex() != 5 {
		t.Fatalf("reopened at index %d, want 5", f.AppliedIndex())
	}
	// raft replays from its last snapshot (say index 1): 2..5 again, then 6 and 7.
	for _, l := range logs[1:] {
		if r := f.Apply(l); r != nil {
			t.Fatalf("apply %d: %v", l.Index, r)
		}
	}
	if got := userState(t, f)["x"]; got != "aaaaaa" {
		t.Fatalf("x = %q after the replay; want 6 appends, each once", got)
	}
	if st := f.Stats(); st.Skipped != 3 || st.Applied != 7 {
		t.Fatalf("after the replay: %+v (want 3 entries skipped: 2, 4, 5)", st)
	}
}

// A command refused by the state machine (malformed, forged onto a reserved key, too large
// once an append has grown the value) is refused in the same way on every node and changes
// nothing, but the index moves on; the commands beside it in the batch apply.
func TestApplyRefusesBadCommandsAlike(t *testing.T) {
	f := openFSM(t, t.TempDir(), FSMOptions{})
	meta, _ := encodeMeta(set(memberKey+"x", "addr"))
	forged := slices.Clone(meta)
	forged[1] = classUser
	resp := f.ApplyBatch([]*raft.Log{
		entry(1, cmd(t, set("a", "1"))),
		entry(2, []byte{1, 0, 0}),
		entry(3, forged),
		entry(4, cmd(t, set("b", "2"))),
	})
	if resp[0] != nil || resp[3] != nil || resp[1] == nil || resp[2] == nil {
		t.Fatalf("responses %v", resp)
	}
	if !errors.Is(resp[2].(error), ErrReservedKey) {
		t.Fatalf("forged command: %v", resp[2])
	}
	if got := userState(t, f); len(got) != 2 || got["a"] != "1" || got["b"] != "2" || f.AppliedIndex() != 4 {
		t.Fatalf("state %v at %d", got, f.AppliedIndex())
	}
	if _, ok := f.member("x"); ok {
		t.Fatal("the forged command wrote a reserved key")
	}
}

// A batch larger than MaxCommandBytes is committed in several transactions, each with the
// index of its last command; an append that would grow a value past the limit is refused
// alone.
func TestApplyBatchSplitsAtTheCommandLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 70 MiB")
	}
	f := openFSM(t, t.TempDir(), FSMOptions{})
	big := strings.Repeat("v", MaxCommandBytes/3)
	resp := f.ApplyBatch([]*raft.Log{
		entry(1, cmd(t, set("a", big))),
		entry(2, cmd(t, set("b", big))),
		entry(3, cmd(t, set("c", big))),
		entry(4, cmd(t, appendOp("a", big), appendOp("a", big))), // a would be 3 thirds + a bit
		entry(5, cmd(t, set("d", "small"))),
	})
	if resp[0] != nil || resp[1] != nil || resp[2] != nil || resp[4] != nil {
		t.Fatalf("responses %v", resp)
	}
	if err, _ := resp[3].(error); !errors.Is(err, ErrCommandTooLarge) {
		t.Fatalf("the growing append: %v", resp[3])
	}
	st := f.Stats()
	if st.Transactions != 2 || st.Applied != 5 {
		t.Fatalf("%+v: want 2 transactions", st)
	}
	if got := userState(t, f); len(got["a"]) != len(big) || got["d"] != "small" {
		t.Fatalf("a has %d bytes, d=%q", len(got["a"]), got["d"])
	}
}

// applyN applies commands from..to, each setting k<i> and appending to "log".
func applyN(t testing.TB, f *FSM, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if r := f.Apply(entry(i, cmd(t, set(fmt.Sprintf("k%04d", i), strings.Repeat("v", int(i%50))), appendOp("log", fmt.Sprint(i, ","))))); r != nil {
			t.Fatal(r)
		}
	}
}

// A snapshot holds exactly the state at the index Snapshot was called at, although Persist
// runs while later commands are applied (the database's file grows under the backup): the
// restored database equals one that applied only up to that index, reserved keys included.
// Broken (Persist not cutting the backup at Snapshot's length), the restored state has the
// later commands and the test fails.
func TestSnapshotHoldsExactlyTheAppliedIndex(t *testing.T) {
	f := openFSM(t, t.TempDir(), FSMOptions{})
	ref := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, f, 1, 50)
	applyN(t, ref, 1, 50)

	// Persist concurrently with applies 51..100.
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() { perr = s.Persist(sink) })
	applyN(t, f, 51, 100)
	wg.Wait()
	s.Release()
	if perr != nil {
		t.Fatal(perr)
	}
	// And one persisted after the file has surely grown past it.
	s2, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	applyN(t, f, 101, 130)
	sink2 := &memSink{}
	if err := s2.Persist(sink2); err != nil {
		t.Fatal(err)
	}
	s2.Release()
	applyN(t, ref, 51, 100)
	want100 := dump(t, ref)

	for i, c := range []struct {
		snap []byte
		at   uint64
		want []string
	}{{sink.Bytes(), 50, nil}, {sink2.Bytes(), 100, want100}} {
		if c.want == nil {
			r := openFSM(t, t.TempDir(), FSMOptions{})
			applyN(t, r, 1, 50)
			c.want = dump(t, r)
		}
		g := openFSM(t, t.TempDir(), FSMOptions{})
		if err := g.Restore(io.NopCloser(bytes.NewReader(c.snap))); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		if g.AppliedIndex() != c.at {
			t.Fatalf("snapshot %d: restored at index %d, want %d", i, g.AppliedIndex(), c.at)
		}
		if got := dump(t, g); !slices.Equal(got, c.want) {
			t.Fatalf("snapshot %d at %d: restored %d pairs, want %d (the state at that index exactly)", i, c.at, len(got), len(c.want))
		}
	}
}

// A restore replaces the whole state (keys the node had that the snapshot lacks are gone) in a
// new generation, removes the old file, and survives a reopen.
func TestRestoreReplacesTheState(t *testing.T) {
	a := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, a, 1, 20)
	snap := snapshotBytes(t, a)

	dir := t.TempDir()
	b := openFSM(t, dir, FSMOptions{})
	if r := b.ApplyBatch([]*raft.Log{entry(1, cmd(t, set("only-b", "x"))), entry(40, cmd(t, set("k0003", "b's")))}); r[0] != nil || r[1] != nil {
		t.Fatal(r)
	}
	if err := b.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	want := dump(t, a)
	if got := dump(t, b); !slices.Equal(got, want) || b.AppliedIndex() != 20 || b.Stats().Generation != 2 {
		t.Fatalf("after the restore: %d pairs (want %d), index %d, %+v", len(got), len(want), b.AppliedIndex(), b.Stats())
	}
	if files := dirNames(t, dir); !slices.Equal(files, []string{"CURRENT", "state-000002.wal"}) {
		t.Fatalf("files after the restore: %v", files)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openFSM(t, dir, FSMOptions{})
	if got := dump(t, b); !slices.Equal(got, want) || b.AppliedIndex() != 20 {
		t.Fatalf("reopened: %d pairs at %d", len(got), b.AppliedIndex())
	}
	applyN(t, b, 21, 22)
	if b.AppliedIndex() != 22 {
		t.Fatal("no apply after the restore")
	}
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// recordStarts returns where each record of a snapshot's log starts, in the snapshot.
func recordStarts(t testing.TB, snap []byte) []int64 {
	t.Helper()
	var starts []int64
	_, err := recovery.Recover(t.Context(), bytes.NewReader(snap[snapshotHeaderSize:]), recovery.ApplyFunc(func(r recovery.Record) error {
		starts = append(starts, snapshotHeaderSize+r.Offset)
		return nil
	}), recovery.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	return starts
}

// A damaged snapshot is refused with a code and an offset at or before the damage, and the node
// keeps exactly the state it had (same pairs, index, generation, files), and goes on applying:
// one flipped bit anywhere (the header, every record's header, the first records, random
// payload bytes; every byte with REPLICATION_DEEP=1), a stream cut short anywhere (a record
// boundary too: a shorter log that verifies, which only the header's length exposes), and
// bytes after the log. The undamaged snapshot then installs.
func TestRestoreRefusesDamageAndKeepsTheState(t *testing.T) {
	r := rng(seed(t))
	a := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, a, 1, 30)
	snap := snapshotBytes(t, a)
	starts := recordStarts(t, snap)

	dir := t.TempDir()
	b := openFSM(t, dir, FSMOptions{})
	applyN(t, b, 1, 3)
	before, files := dump(t, b), dirNames(t, dir)

	var positions []int
	if deep() {
		for p := range snap {
			positions = append(positions, p)
		}
	} else {
		for p := range snapshotHeaderSize + 64 {
			positions = append(positions, p)
		}
		for _, s := range starts {
			for d := range 12 {
				positions = append(positions, int(s)+d)
			}
		}
		for range 64 {
			positions = append(positions, r.IntN(len(snap)))
		}
	}
	reservedHits := 0
	for _, p := range positions {
		if p == snapshotHeaderSize+6 || p == snapshotHeaderSize+7 {
			reservedHits++
		}
	}
	check := func(what string, stream []byte, maxOff int64) {
		t.Helper()
		err := b.Restore(io.NopCloser(bytes.NewReader(stream)))
		var re *RestoreError
		if !errors.As(err, &re) {
			t.Fatalf("%s: restore returned %v, want a *RestoreError", what, err)
		}
		if re.Code == "" || re.Offset < 0 || re.Offset > maxOff {
			t.Fatalf("%s: refused with code %q at offset %d (want a code, and an offset in [0, %d]): %v", what, re.Code, re.Offset, maxOff, err)
		}
		if !walerr.IsCorruption(err) && re.Code != walerr.IncompleteRead {
			t.Fatalf("%s: refused as %s, not as damage: %v", what, re.Code, err)
		}
		if got := dump(t, b); !slices.Equal(got, before) || b.AppliedIndex() != 3 || b.Stats().Generation != 1 {
			t.Fatalf("%s: the node's state changed after a refused restore", what)
		}
		if got := dirNames(t, dir); !slices.Equal(got, files) {
			t.Fatalf("%s: files %v after a refused restore, want %v", what, got, files)
		}
	}
	for _, p := range positions {
		d := slices.Clone(snap)
		d[p] ^= 1 << r.IntN(8)
		if p == snapshotHeaderSize+6 || p == snapshotHeaderSize+7 {
			// The log's file header's two reserved bytes, which every read ignores (db's own
			// restore test says so too): the same state installs.
			c := openFSM(t, t.TempDir(), FSMOptions{})
			if err := c.Restore(io.NopCloser(bytes.NewReader(d))); err != nil || !slices.Equal(dump(t, c), dump(t, a)) {
				t.Fatalf("a reserved byte flipped: %v", err)
			}
			c.Close()
			continue
		}
		maxOff := int64(p)
		if p < snapshotHeaderSize {
			maxOff = snapshotHeaderSize - 1
		}
		check(fmt.Sprintf("bit flipped at byte %d of %d", p, len(snap)), d, maxOff)
	}
	cuts := []int{0, 1, snapshotHeaderSize, snapshotHeaderSize + 4, len(snap) - 1}
	for _, s := range starts[1:] {
		cuts = append(cuts, int(s), int(s)+5)
	}
	for _, c := range cuts {
		check(fmt.Sprintf("cut at %d of %d", c, len(snap)), snap[:c], int64(max(c, snapshotHeaderSize-1)))
	}
	check("bytes after the log", append(slices.Clone(snap), 0), int64(len(snap)))
	if refused := b.Stats().Refused; refused != int64(len(positions)-reservedHits+len(cuts)+1) {
		t.Fatalf("%d refusals counted", refused)
	}
	applyN(t, b, 4, 5)
	if err := b.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got, want := dump(t, b), dump(t, a); !slices.Equal(got, want) {
		t.Fatal("the good snapshot did not restore the source's state")
	}
}

// A header whose index does not match what its log holds is refused after the switch was
// prepared, and the old database is reopened.
func TestRestoreChecksTheIndexTheLogHolds(t *testing.T) {
	a := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, a, 1, 10)
	snap := snapshotBytes(t, a)
	binary.BigEndian.PutUint64(snap[8:], 11) // the header lies, with a good checksum
	copy(snap[:snapshotHeaderSize], snapshotHeader{Index: 11, Length: int64(len(snap) - snapshotHeaderSize)}.encode())

	dir := t.TempDir()
	b := openFSM(t, dir, FSMOptions{})
	applyN(t, b, 1, 2)
	before := dump(t, b)
	err := b.Restore(io.NopCloser(bytes.NewReader(snap)))
	if !errors.Is(err, recovery.ErrCorruptWAL) || !strings.Contains(err.Error(), "holds index 10") {
		t.Fatalf("restore: %v", err)
	}
	if got := dump(t, b); !slices.Equal(got, before) || b.Stats().Generation != 1 {
		t.Fatal("the old state is not back")
	}
	if files := dirNames(t, dir); !slices.Equal(files, []string{"state-000001.wal"}) {
		t.Fatalf("files %v", files)
	}
	applyN(t, b, 3, 3)
}

// A snapshot's Persist after a restore switched the database is refused (it would copy the new
// database's log under the old one's length and index).
func TestPersistAfterARestoreIsRefused(t *testing.T) {
	a := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, a, 1, 5)
	snap := snapshotBytes(t, a)
	b := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, b, 1, 2)
	s, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := s.Persist(sink); err == nil || !sink.canceled {
		t.Fatalf("persist after a restore: %v (canceled %v)", err, sink.canceled)
	}
	s.Release()
}

// Compaction never runs between a Snapshot and its Release (the log must keep the length the
// snapshot measured), and runs after it when the log has grown enough; the snapshots before
// and after a compaction are both exact. A snapshot asked for while a compaction holds the log
// is refused at once (ErrSnapshotBusy), not waited for: Snapshot runs on raft's apply goroutine.
func TestCompactionAndSnapshotsDoNotOverlap(t *testing.T) {
	f := openFSM(t, t.TempDir(), FSMOptions{CompactMinBytes: 1, CompactRatio: 1.5})
	for i := uint64(1); i <= 200; i++ { // overwrites: the log outgrows the live state
		f.Apply(entry(i, cmd(t, set(fmt.Sprint("k", i%5), strings.Repeat("x", 100)))))
	}
	ref := dump(t, f)
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Compact(); !errors.Is(err, ErrSnapshotBusy) {
		t.Fatalf("compact during a snapshot: %v", err)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrSnapshotBusy) {
		t.Fatalf("a second snapshot during one: %v", err)
	}
	applyN(t, f, 201, 210)
	sink := &memSink{}
	if err := s.Persist(sink); err != nil {
		t.Fatal(err)
	}
	size0, _ := fileSize(f.genPath(1))
	s.Release() // compacts: the log is far above 1.5 times its size at open (0)
	size1, _ := fileSize(f.genPath(1))
	if f.Stats().Compactions != 1 || size1 >= size0 {
		t.Fatalf("after release: %+v, log %d -> %d bytes", f.Stats(), size0, size1)
	}
	g := openFSM(t, t.TempDir(), FSMOptions{})
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, g); !slices.Equal(got, ref) {
		t.Fatal("the snapshot taken before the compaction is not the state at its index")
	}
	want := dump(t, f)
	h := openFSM(t, t.TempDir(), FSMOptions{})
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, h); !slices.Equal(got, want) || h.AppliedIndex() != 210 {
		t.Fatal("the snapshot of the compacted log is not the state at its index")
	}

	f.fence <- struct{}{} // as a compaction holds it
	if _, err := f.Snapshot(); !errors.Is(err, ErrSnapshotBusy) {
		t.Fatalf("snapshot during a compaction: %v", err)
	}
	<-f.fence
}

// What a restore was writing when the process died (the next generation's file, its
// ".replace", CURRENT's temporary) is removed at open, and the current generation opens.
func TestOpenRemovesWhatARestoreLeft(t *testing.T) {
	dir := t.TempDir()
	f := openFSM(t, dir, FSMOptions{})
	applyN(t, f, 1, 5)
	want := dump(t, f)
	f.Close()
	for _, name := range []string{"state-000002.wal", "state-000002.wal.replace", "CURRENT.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f = openFSM(t, dir, FSMOptions{})
	if got := dump(t, f); !slices.Equal(got, want) {
		t.Fatal("state changed")
	}
	if files := dirNames(t, dir); !slices.Equal(files, []string{"CURRENT.tmp", "state-000001.wal"}) {
		t.Fatalf("files %v", files)
	}
}

// The snapshot of a state machine that has applied nothing is a header and an empty log; it
// installs as an empty database (index 0), replacing whatever the node had.
func TestEmptySnapshot(t *testing.T) {
	empty := openFSM(t, t.TempDir(), FSMOptions{})
	snap := snapshotBytes(t, empty)
	if len(snap) != snapshotHeaderSize {
		t.Fatalf("an empty snapshot of %d bytes", len(snap))
	}
	b := openFSM(t, t.TempDir(), FSMOptions{})
	applyN(t, b, 1, 3)
	if err := b.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, b); len(got) != 0 || b.AppliedIndex() != 0 {
		t.Fatalf("after installing an empty snapshot: %v at %d", got, b.AppliedIndex())
	}
	applyN(t, b, 1, 1)
}
