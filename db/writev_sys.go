//go:build linux || darwin

package db

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// writev appends bufs with writev(2), as few calls as the kernel allows (a short write, or
// more than IOV_MAX slices, continues where it stopped).
func writev(f *os.File, bufs [][]byte) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	bufs = append([][]byte(nil), bufs...) // advanced in place below
	var werr error
	cerr := conn.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			for len(bufs) > 0 && len(bufs[0]) == 0 {
				bufs = bufs[1:]
			}
			if len(bufs) == 0 {
				break
			}
			n, err := unix.Writev(int(fd), bufs[:min(len(bufs), 1024)])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				werr = &fs.PathError{Op: "writev", Path: f.Name(), Err: err}
				return true
			}
			if n == 0 {
				werr = &fs.PathError{Op: "writev", Path: f.Name(), Err: unix.EIO}
				return true
			}
			for n > 0 {
				k := min(n, len(bufs[0]))
				bufs[0] = bufs[0][k:]
				n -= k
				if len(bufs[0]) == 0 {
					bufs = bufs[1:]
				}
			}
		}
		return true
	})
	if cerr != nil {
		return cerr
	}
	return werr
}
