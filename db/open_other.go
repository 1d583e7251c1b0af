//go:build !unix

package db

import (
	"io"
	"os"
)

// openRegular opens path and refuses anything that is not a regular file.
func openRegular(path string, flag int) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	f, err := os.OpenFile(path, flag, 0o644)
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

// writev appends bufs one write each (no writev here): a failure leaves a prefix, as a short
// write would.
func writev(f *os.File, bufs [][]byte) error {
	for _, b := range bufs {
		n, err := f.Write(b)
		if err == nil && n != len(b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return err
		}
	}
	return nil
}
