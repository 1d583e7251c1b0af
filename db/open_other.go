//go:build !unix

package db

import (
	"os"
)

// openRegularPerm opens path and refuses anything that is not a regular file; perm is the
// mode of a file it creates.
func openRegularPerm(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, notRegular(path, fi.Mode())
	}
	return f, nil
}

// keepOwner: files have no owner to keep here beyond what the filesystem gives them.
func keepOwner(*os.File, os.FileInfo) error { return nil }

func ownerOf(os.FileInfo) string { return "unknown" }
