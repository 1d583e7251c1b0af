LOG=$W/w4k.wal ROUNDS=3 scripts/verify-vs-dd.sh
