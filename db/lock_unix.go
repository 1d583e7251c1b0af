//go:build unix

package db

import (
	"os"

	"golang.org/x/sys/unix"
)

// errWouldBlock is what flock says when another open file description holds the lock.
var errWouldBlock error = unix.EWOULDBLOCK

// lockFile takes flock(LOCK_EX|LOCK_NB) on f. flock locks belong to the open file description,
// so a second open of the same file, in this process or another, conflicts; the lock goes away
// when the file is closed (or the process dies), so a crash never leaves a stale lock.
func lockFile(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := conn.Control(func(fd uintptr) {
		for {
			lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if lerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return lerr
}
