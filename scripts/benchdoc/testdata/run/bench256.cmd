walrec bench w256.wal --parallelism 1,2,4,0 --runs 1 --json
