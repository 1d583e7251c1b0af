module github.com/streamwal/recovery

go 1.26.8

require (
	github.com/klauspost/crc32 v1.3.0
	github.com/petermattis/goid v0.0.0-20261109124353-7cfa343ad0ab
	github.com/schollz/progressbar/v3 v3.18.0
	github.com/tidwall/btree v1.8.2
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.34.0
	golang.org/x/term v0.33.0
)

require (
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
)
