go test -count=1 -run 'TestMemoryBoundedByPool|TestTinyRecordsStayWithinTheBound|TestHeapStaysSmallOn512MiBLog' -v ./tests/
