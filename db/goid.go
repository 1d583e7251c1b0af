package db

import (
	"runtime"
	"strconv"

	fastgoid "github.com/petermattis/goid"
)

// goid returns the current goroutine's id. It is used for one thing: to tell that Close,
// Compact or Update was called from inside the function an Update is running (which would
// otherwise wait for itself forever) and to fail with NESTED instead. It is called once per
// Update, so its cost is in every commit: parsing the id out of runtime.Stack cost 2.2 µs a
// call and 15-25 % of group commit's throughput at 64 writers (decision record in
// docs/design.md), so the id is read from the runtime's goroutine structure
// (github.com/petermattis/goid), checked at start-up against the stack's, which it falls back
// to where they disagree (a Go release whose layout that library does not know yet).
var goid = fastgoid.Get

func init() {
	ids := make(chan [2]int64)
	go func() { ids <- [2]int64{goid(), stackGoid()} }()
	other := <-ids
	if goid() != stackGoid() || other[0] != other[1] {
		goid = stackGoid
	}
}

// stackGoid parses the id from the first line of the goroutine's stack trace
// ("goroutine 18 [running]:").
func stackGoid() int64 {
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
