//go:build unix

package main

import "golang.org/x/sys/unix"

// statfsFree is the space available to an unprivileged writer in dir's filesystem.
func statfsFree(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if free > 1<<62 {
		free = 1 << 62
	}
	return int64(free), true
}
