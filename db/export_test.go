package db

// SetPartBytes sets the live data that makes finish worth another part, for a test, and
// returns what restores it.
func SetPartBytes(n int64) (restore func()) {
	old := partBytes
	partBytes = n
	return func() { partBytes = old }
}
