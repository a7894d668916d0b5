// Package bench measures Strata on realistic data: bytes per sample in the
// bucket, compaction and downsampling of long ranges (its benchmarks), and,
// in bench/load, the comparative load test against Prometheus. The data
// generator is package internal/gen, which product tests share.
package bench
