//go:build unix

package db

import "golang.org/x/sys/unix"

// FreeSpace is the space an unprivileged writer may still use in dir's filesystem, so that a
// sidecar that would not fit is refused before it fills the disk.
func (osFS) FreeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
