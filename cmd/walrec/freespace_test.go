//go:build unix

package main

import (
	"testing"
)

// withFree makes the filesystem report free bytes, for the test.
func withFree(t *testing.T, free int64) {
	old := freeSpace
	freeSpace = func(string) (int64, bool) { return free, true }
	t.Cleanup(func() { freeSpace = old })
}
