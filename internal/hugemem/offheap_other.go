//go:build !linux

package hugemem

func get(int) ([]byte, bool) { return nil, false }

func put([]byte) bool { return false }
