package db

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncData is fdatasync: it flushes the data and the metadata needed to read it back (the size
// of an appended file), and skips timestamps, so a commit costs one device flush.
func syncData(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := conn.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
