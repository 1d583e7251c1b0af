package db

// SetPartBytes sets the live data that makes finish worth another part, for a test, and
// returns what restores it.
func SetPartBytes(n int64) (restore func()) {
	old := partBytes
	partBytes = n
	return func() { partBytes = old }
}

// UseStackGoid makes Update find its goroutine's id by parsing runtime.Stack, as before the
// fast id, for BenchmarkNestedCheck's comparison; the returned func restores the fast one.
func UseStackGoid() (restore func()) {
	fast := goid
	goid = stackGoid
	return func() { goid = fast }
}
