"""The cost of `il.torch.watch(model, every=k)` in a user's PyTorch training loop.

The loop is the usual one (forward, F.cross_entropy, zero_grad, backward, SGD step) on an
mnist-sized MLP 784-512-512-10 with ReLU, batch 128, CPU float32, random inputs. Plain and watched
loops run in alternating rounds (so drifting machine load hits both alike); the figure is the median
over rounds of the time per step, and overhead = watched / plain - 1.

    python -m initlab.bench.torch_watch            # prints the table
"""
from __future__ import annotations

import statistics
import time
from typing import Sequence


def run(threads: Sequence[int] = (1,), quick: bool = False, every: int = 10, batch: int = 128,
        widths: Sequence[int] = (784, 512, 512, 10)) -> list:
    import torch
    from torch import nn
    from torch.nn import functional as F

    import initlab as il

    rounds, steps = (5, 20) if quick else (15, 40)
    rows = []
    old_threads = torch.get_num_threads()
    try:
        for t in threads:
            torch.set_num_threads(t)
            torch.manual_seed(0)
            mods = []
            for i in range(len(widths) - 1):
                mods.append(nn.Linear(widths[i], widths[i + 1]))
                if i < len(widths) - 2:
                    mods.append(nn.ReLU())
            model = nn.Sequential(*mods)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            X = torch.randn(batch, widths[0])
            y = torch.randint(0, widths[-1], (batch,))

            def loop(n: int) -> float:
                start = time.perf_counter()
                for _ in range(n):
                    loss = F.cross_entropy(model(X), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                return (time.perf_counter() - start) / n

            loop(5)  # warm-up: allocator, thread pool
            plain, watched = [], []
            for _ in range(rounds):
                plain.append(loop(steps))
                with il.torch.watch(model, every=every):
                    watched.append(loop(steps))
            p, w = statistics.median(plain), statistics.median(watched)
            rows.append({"widths": "-".join(map(str, widths)), "batch": batch, "threads": t,
                         "every": every, "plain_ms": 1e3 * p, "watched_ms": 1e3 * w,
                         "overhead": w / p - 1.0})
    finally:
        torch.set_num_threads(old_threads)
    return rows


def format_table(rows: Sequence[dict]) -> str:
    lines = ["| MLP | batch | threads | every | plain step (ms) | watched step (ms) | overhead |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['widths']} | {r['batch']} | {r['threads']} | {r['every']} | {r['plain_ms']:.3f} | "
                     f"{r['watched_ms']:.3f} | {100 * r['overhead']:+.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(format_table(run(threads=(1, 2))))
