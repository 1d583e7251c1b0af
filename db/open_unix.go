//go:build unix

package db

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openRegular opens path with O_NONBLOCK (so that a FIFO does not block the open), refuses
// anything fstat does not call a regular file, then makes the descriptor blocking again.
func openRegular(path string, flag int) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, flag|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, notRegular(path, modeOf(st.Mode))
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func modeOf(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

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
