package db

import (
	"runtime"
	"strconv"
)

// goid returns the current goroutine's id, parsed from the first line of its stack trace
// ("goroutine 18 [running]:"). It is used for one thing: to tell that Close or Update was
// called from inside the function an Update is running (which would otherwise wait for
// itself forever) and to fail instead. It costs about a microsecond, once per Update.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return -1
	}
	b = b[len(prefix):]
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	id, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return -1
	}
	return id
}
