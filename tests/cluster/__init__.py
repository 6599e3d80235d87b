"""Tests against a real SLURM cluster (marker ``slurm``): skipped, with the reason, unless one
answers; scripts/slurm/start-local-cluster.sh starts a one-node one on 127.0.0.1."""
