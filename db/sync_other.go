//go:build !linux

package db

import "os"

// syncData is fsync (os.File.Sync: F_FULLFSYNC on darwin).
func syncData(f *os.File) error { return f.Sync() }
