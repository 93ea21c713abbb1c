"""Fill throughput of initlab's initializers vs numpy and torch: python bench/bench_init.py [-h]."""
from initlab.bench.init_fill import main

if __name__ == "__main__":
    main()
