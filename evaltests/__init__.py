"""The gate's benchmarks as pytest tests, with their suites, task YAMLs, data and demo checkpoints."""
