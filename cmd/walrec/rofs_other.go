//go:build !unix

package main

import "errors"

var errROFS = errors.New("read-only file system")
