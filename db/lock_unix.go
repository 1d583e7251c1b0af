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

// unlockFile releases f's flock. Close releases it too, but only once the descriptor is really
// closed, which waits for a read still in flight on it (recovery may leave one behind, see
// recovery.Recover): released here, the lock goes with Close, whatever is in flight.
func unlockFile(f *os.File) {
	conn, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = conn.Control(func(fd uintptr) {
		for unix.Flock(int(fd), unix.LOCK_UN) == unix.EINTR {
		}
	})
}
