"""warpsdf performance benchmarks (not part of the test suite). Each prints JSON lines."""
