//go:build linux || darwin

package db

import "golang.org/x/sys/unix"

// FreeSpace is the space an unprivileged writer may still use in dir's filesystem, so that a
// sidecar that would not fit is refused before it fills the disk.
func (osFS) FreeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	return int64(min(free, 1<<62)), nil
}
