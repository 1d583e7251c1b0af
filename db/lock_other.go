//go:build !unix

package db

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("db: file is locked")

// lockFile is not implemented off unix: refuse rather than run two writers unguarded.
func lockFile(*os.File) error {
	return errors.New("db: exclusive file locks are implemented on unix only; use db.ReadOnly() or a custom FS")
}

// unlockFile: no lock is ever taken here.
func unlockFile(*os.File) {}
