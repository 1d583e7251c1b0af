for i in $(seq 2); do walrec bench w4k.wal --parallelism 1,2,4,0 --runs 1 --json || exit; done
