//go:build !linux && !darwin

package db

import (
	"io"
	"os"
)

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
