"""Rollout workers, the training loop, evaluation, checkpoints and metrics."""
