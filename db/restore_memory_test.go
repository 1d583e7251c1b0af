package db_test

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/heapsample"
	"github.com/streamwal/recovery/internal/testdepth"
)

// logStream yields a v1 log of about size bytes as it is read, made on the fly (nothing of it
// is held but the record being read): records of one 4 KiB set each, over keys in a space
// of keys.
type logStream struct {
	size, keys int64
	rng        *rand.Rand
	off        int64
	rec        []byte // the rest of the record being read
	buf        []byte
	v, key     []byte
	payload    []byte
}

func newLogStream(size, keys int64) *logStream {
	return &logStream{size: size, keys: keys, rng: rand.New(rand.NewPCG(uint64(size), 1)), rec: format.FileHeader[:]}
}

func (s *logStream) Read(p []byte) (int, error) {
	if len(s.rec) == 0 {
		if s.off >= s.size {
			return 0, io.EOF
		}
		// Nothing allocated per record: the generator's garbage would be counted as the
		// restore's.
		if s.v == nil {
			s.v = make([]byte, 4000)
		}
		for i := 0; i+8 <= len(s.v); i += 8 {
			binary.LittleEndian.PutUint64(s.v[i:], s.rng.Uint64())
		}
		s.key = binary.BigEndian.AppendUint64(s.key[:0], uint64(s.rng.Int64N(s.keys)))
		s.payload = format.AppendSet(s.payload[:0], s.key, s.v)
		s.buf = format.AppendRecord(s.buf[:0], format.LayoutV1, s.payload)
		s.rec = s.buf
	}
	n := copy(p, s.rec)
	s.rec = s.rec[n:]
	s.off += int64(n)
	return n, nil
}

// Restore's memory is flat in the size of the stream: the peak growth of the heap while it
// restores a stream 8 times longer (default 32 and 256 MiB; WALREC_DEEP=1: 256 MiB and 2 GiB)
// stays within a few MiB of the shorter one's, and within the pool's bound. The live store
// such a stream opens to is measured beside it (Open after the restore): the restore holds a
// small fraction of it.
func TestRestoreMemoryIsFlatInStreamSize(t *testing.T) {
	small, large := testdepth.Pick[int64](32<<20, 256<<20), testdepth.Pick[int64](256<<20, 2<<30)
	dir := t.TempDir()
	peak := func(size int64) (restore, store int64) {
		path := filepath.Join(dir, "r.db")
		defer os.Remove(path)
		h := heapsample.Start(time.Millisecond)
		info, err := db.Restore(context.Background(), newLogStream(size, 1<<14), path, db.RestoreParallelism(2))
		restore = h.Growth()
		if err != nil || info.Size < size {
			t.Fatalf("restore of %d bytes: %+v %v", size, info, err)
		}
		h = heapsample.Start(time.Millisecond)
		d, err := db.Open(path, db.ReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		store = h.Growth()
		d.Close()
		t.Logf("a %d MiB stream: restore's heap peak %.1f MiB; Open's of the same database (%d keys live) %.1f MiB",
			size>>20, float64(restore)/(1<<20), 1<<14, float64(store)/(1<<20))
		return restore, store
	}
	rs, _ := peak(small)
	rl, store := peak(large)
	const slack = 8 << 20
	if rl > rs+slack || rl > 32<<20 {
		t.Fatalf("restore's heap peak %d bytes for %d MiB, %d for %d MiB: not flat", rs, small>>20, rl, large>>20)
	}
	if rl > store {
		t.Fatalf("restore's peak %d is more than the live store's %d", rl, store)
	}
}
