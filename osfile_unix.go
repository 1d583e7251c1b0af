//go:build unix

package recovery

import (
	"os"

	"golang.org/x/sys/unix"
)

// openedReadOnly reports whether f was opened without write access (so cutting it would fail
// with a bare EINVAL or EBADF). It asks through SyscallConn, which, unlike Fd, leaves the
// file's mode alone.
func openedReadOnly(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ro := false
	_ = rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		ro = err == nil && fl&unix.O_ACCMODE == unix.O_RDONLY
	})
	return ro
}
