//go:build unix

package main

import "syscall"

// errROFS is the error of a write to a read-only filesystem.
var errROFS error = syscall.EROFS
