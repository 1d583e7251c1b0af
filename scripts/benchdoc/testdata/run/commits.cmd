go test -run '^$' -bench ConcurrentCommits -benchtime 300x -count 3 ./db/
