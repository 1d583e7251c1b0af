walrec gen w4k.wal --size 16MiB --record-size 4KiB --quiet --force && walrec gen w256.wal --size 16MiB --record-size 256 --quiet --force && cat w4k.wal w256.wal >/dev/null
