"""What runs (ingress, worker, broker launcher, CLI, bench), the execution core, settings."""
