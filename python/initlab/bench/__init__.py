"""Benchmarks that time initlab against numpy and PyTorch in the same run (`initlab bench`)."""
