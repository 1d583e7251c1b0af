//go:build !linux

package main

// splitBuffers returns k buffers of n bytes from the Go heap: this project's pool keeps its
// buffers there too outside Linux.
func splitBuffers(k, n int) ([][]byte, func()) { return heapBuffers(k, n), func() {} }
