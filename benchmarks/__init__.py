"""datacon benchmarks (run with ``python -m benchmarks.run``)."""
