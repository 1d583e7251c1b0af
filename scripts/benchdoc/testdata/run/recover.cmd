BENCH_LOG_MIB=16 go test -run '^$' -bench 'BenchmarkRecover/size=4KiB' -benchtime 1x -count 3 ./pipeline/
