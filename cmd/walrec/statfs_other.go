//go:build !unix

package main

// statfsFree cannot measure free space here: writers rely on the write errors alone.
func statfsFree(string) (int64, bool) { return 0, false }
