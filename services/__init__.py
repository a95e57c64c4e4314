"""What runs: ingress, sandboxes, languages, broker launcher, benchmarks."""
