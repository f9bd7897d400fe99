"""Accuracy and speed benchmarks: LFW verification, open-set identification, peer comparison."""
