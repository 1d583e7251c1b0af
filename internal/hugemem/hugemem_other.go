//go:build !linux

package hugemem

func offered() bool { return false }

func advise([]byte) {}
