package db_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
)

// Open a database in a file, write in a transaction, read in another, close it, and open it
// again: the second Open replays the log, here with two worker goroutines.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "db-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "example.db")

	d, err := db.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = d.Update(func(tx *db.Tx) error {
		if err := tx.Set([]byte("greeting"), []byte("hello")); err != nil {
			return err
		}
		return tx.Set([]byte("subject"), []byte("world"))
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = d.View(func(tx *db.Tx) error {
		v, ok := tx.Get([]byte("greeting"))
		fmt.Printf("greeting=%s (%v)\n", v, ok)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := d.Close(); err != nil {
		fmt.Println(err)
		return
	}

	d, err = db.Open(path, db.WithRecovery(recovery.WithParallelism(2)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	res := d.Recovery()
	fmt.Printf("recovered %d record, %d ops, truncation: %v\n", res.Records, res.Ops, d.Truncation() != nil)
	d.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(nil, nil) {
			fmt.Printf("%s=%s\n", k, v)
		}
		return nil
	})
	// Output:
	// greeting=hello (true)
	// recovered 1 record, 2 ops, truncation: false
	// greeting=hello
	// subject=world
}
