//go:build !unix

package recovery

import "os"

// openedReadOnly cannot tell on this platform; a cut of a read-only file fails with the
// system's own error.
func openedReadOnly(*os.File) bool { return false }
