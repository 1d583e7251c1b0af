module github.com/streamwal/recovery

go 1.26.8

require (
	github.com/google/btree v1.1.3
	github.com/klauspost/crc32 v1.3.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.34.0
)
