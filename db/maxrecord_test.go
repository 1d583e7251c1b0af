// The database's record limit is the database's: the writer's and recovery's agree, and a
// recovery option that says otherwise is refused at Open.
package db_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
)

func TestDatabaseRecordLimitWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	if _, err := db.Open(path, db.WithMaxRecordSize(1<<20), db.WithRecovery(recovery.WithMaxRecordSize(4096))); !errors.Is(err, recovery.ErrInvalidArgument) {
		t.Fatalf("recovery.WithMaxRecordSize through WithRecovery: %v, want INVALID_ARGUMENT", err)
	}
	opts := []db.Option{db.WithMaxRecordSize(1 << 20), db.WithRecovery(recovery.WithParallelism(2))}
	d, err := db.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("k"), make([]byte, 10000)) }); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err = db.Open(path, opts...); errors.Is(err, recovery.ErrRecordTooLarge) {
		t.Errorf("acknowledged commit makes the database unopenable with the options that wrote it: %v", err)
	}
}
