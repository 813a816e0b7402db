# fuzz: libFuzzer harnesses, built and run by fuzz/run (clang), not by make.
EXTRA_DIST += fuzz
