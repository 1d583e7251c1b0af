module github.com/streamwal/recovery

go 1.26.8

require (
	github.com/klauspost/crc32 v1.3.0
	golang.org/x/sync v0.25.0
)

require golang.org/x/sys v0.34.0 // indirect
