// Package bench holds QNet's benchmarks: the performance targets of the issues are
// measured here, never asserted in timed tests. docs/performance.md records the figures,
// the machine and the commands.
package bench
