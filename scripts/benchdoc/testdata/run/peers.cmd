go run . -sizes 256,4KiB -volume 256MiB,512MiB -out $OUT/peers
