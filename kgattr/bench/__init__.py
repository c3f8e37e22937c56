"""Evaluation: splits, metrics, baselines and the benchmark."""
