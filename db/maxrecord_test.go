// The database's record limit wins over a recovery option that says otherwise.
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
	opts := []db.Option{db.WithMaxRecordSize(1 << 20), db.WithRecovery(recovery.WithMaxRecordSize(4096))}
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
