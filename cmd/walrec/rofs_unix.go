//go:build unix

package main

import "syscall"

var errROFS error = syscall.EROFS
