//go:build !race && !invariants

package bufpool

// Debug is on in race-detector and `invariants` builds: released buffers are poisoned.
const Debug = false
