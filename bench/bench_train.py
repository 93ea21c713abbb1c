"""One MLP training step with initlab's kernels next to PyTorch and numpy:
`python bench/bench_train.py [--threads 1 2] [--quick] [--networks tiny mnist]`.
A thin wrapper around initlab.bench.train_step (also reachable as `initlab bench`)."""
from initlab.bench.train_step import main

if __name__ == "__main__":
    main()
