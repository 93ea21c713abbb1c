"""The digits fit end to end: a 64-256-256-10 ReLU MLP, Adam (lr 1e-3), batch 64, 30 epochs on the
1797 digits (pixels / 16), shuffled every epoch, the last partial batch used, in initlab, scikit-learn's
MLPClassifier and PyTorch (the same loop: shuffle, forward, cross-entropy, backward, Adam step), and
JAX when installed, written two ways: "jax", one ``jax.jit``-compiled Adam step per batch in a Python
epoch loop (the batch's rows gathered inside the compiled step, parameters and moments donated; the
loop of JAX's own MLP tutorial), and "jax_scan", one compiled function per epoch that runs the full
batches with ``lax.scan`` and then the partial one. Seconds per whole fit, the libraries taking turns
in the same run; each thread count in its own process pinned to that many CPUs (timing.run_pinned).

>>> from initlab.bench import fit_digits
>>> print(fit_digits.format_table(fit_digits.run(threads=(1,), quick=True)))   # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from .timing import allowed_cpus, run_pinned, time_interleaved
from .train_step import jax_note, thread_limits

HIDDEN = (256, 256)
EPOCHS, BATCH, LR = 30, 64, 1e-3
ROUNDS = 3  # turns per library; the fastest fit counts


def _data():
    from initlab.datasets import load_digits

    X, y = load_digits()
    return (X / 16.0).astype(np.float32), y


def initlab_fit(epochs: int = EPOCHS) -> Callable[[], object]:
    import initlab as il

    X, y = _data()

    def fit():
        net = il.Network([64, *HIDDEN, 10], activation="relu", seed=0)
        return net.fit(X, y, epochs=epochs, batch_size=BATCH, optimizer="adam", lr=LR, stats_every=0,
                       progress=False)

    return fit


def sklearn_fit(epochs: int = EPOCHS) -> Optional[Callable[[], object]]:
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    X, y = _data()

    def fit():
        clf = MLPClassifier(HIDDEN, solver="adam", batch_size=BATCH, max_iter=epochs, learning_rate_init=LR,
                            alpha=0.0, tol=0.0, n_iter_no_change=epochs + 1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached, as intended
            return clf.fit(X, y)

    return fit


def torch_fit(epochs: int = EPOCHS) -> Optional[Callable[[], object]]:
    try:
        import torch
    except ImportError:
        return None
    X, y = _data()
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)

    def fit():
        torch.manual_seed(0)
        widths = (64, *HIDDEN, 10)
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(len(tX), generator=gen)
            for lo in range(0, len(tX), BATCH):
                rows = order[lo:lo + BATCH]
                opt.zero_grad(set_to_none=False)
                loss = torch.nn.functional.cross_entropy(model(tX[rows]), ty[rows])
                loss.backward()
                opt.step()
        return model

    return fit


def _jax_adam(jax, jnp):
    """The jitted pieces of the JAX fits: one Adam step (torch.optim.Adam's formula) on the rows
    `idx` of device-resident X, y."""
    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_fn(params, xb, yb):
        h = xb
        for i, (W, b) in enumerate(params):
            h = h @ W + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        log_p = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1))

    def step(state, X, y, idx):
        params, m, v, t = state
        t = t + 1.0
        grads = jax.grad(loss_fn)(params, X[idx], y[idx])
        m = jax.tree_util.tree_map(lambda mi, g: b1 * mi + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda vi, g: b2 * vi + (1 - b2) * g * g, v, grads)
        params = jax.tree_util.tree_map(
            lambda p, mi, vi: p - LR / (1 - b1 ** t) * mi / (jnp.sqrt(vi) / jnp.sqrt(1 - b2 ** t) + eps),
            params, m, v)
        return params, m, v, t

    return step


def _jax_init(jax, jnp, gen):
    widths = (64, *HIDDEN, 10)
    params = [(jnp.asarray((gen.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)),
               jnp.zeros(b, jnp.float32)) for a, b in zip(widths[:-1], widths[1:])]
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return params, zeros, jax.tree_util.tree_map(jnp.zeros_like, params), jnp.float32(0.0)


def jax_fit(epochs: int = EPOCHS, scan: bool = False) -> Optional[Callable[[], object]]:
    """The fit in JAX, or None when JAX is not installed. scan=False: a Python loop over the batches
    calling one jitted step per batch; scan=True: one jitted function per epoch (lax.scan over the
    full batches, then the partial batch)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    X, y = _data()
    n = len(X)
    full = n // BATCH
    tX, ty = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    step = _jax_adam(jax, jnp)
    if scan:
        def run_epoch(state, X, y, order):
            batches = order[:full * BATCH].reshape(full, BATCH)
            state, _ = jax.lax.scan(lambda s, idx: (step(s, X, y, idx), None), state, batches)
            return step(state, X, y, order[full * BATCH:]) if n > full * BATCH else state

        epoch_fn = jax.jit(run_epoch, donate_argnums=0)
    else:
        step_fn = jax.jit(step, donate_argnums=0)

    def fit():
        gen = np.random.default_rng(0)
        state = _jax_init(jax, jnp, gen)
        for _ in range(epochs):
            order = gen.permutation(n).astype(np.int32)
            if scan:
                state = epoch_fn(state, tX, ty, order)
            else:
                for lo in range(0, n, BATCH):
                    state = step_fn(state, tX, ty, order[lo:lo + BATCH])
        jax.block_until_ready(state)
        return state

    return fit


LIBRARIES = ("initlab", "sklearn", "torch", "jax", "jax_scan")


def run(threads: Sequence[int] = (1, 2), quick: bool = False, pinned: bool = True) -> list[dict]:
    """One dict per thread count: seconds per fit (fastest of the calls) for each library, and
    initlab's time over each of the others'. quick: 3 epochs instead of 30. pinned: each thread count
    in a fresh process pinned to that many CPUs (timing.run_pinned: JAX's thread count); row["cpus"]:
    the CPUs the measuring process could run on."""
    if pinned:
        return [row for t in threads for row in run_pinned("initlab.bench.fit_digits", "run", t, quick=quick, pinned=False)]
    epochs = 3 if quick else EPOCHS
    rows = []
    for t in threads:
        with thread_limits(t):
            fits = {"initlab": initlab_fit(epochs), "sklearn": sklearn_fit(epochs), "torch": torch_fit(epochs),
                    "jax": jax_fit(epochs), "jax_scan": jax_fit(epochs, scan=True)}
            seconds = time_interleaved(fits, 0.0, statistic="min", rounds=1 if quick else ROUNDS, warmup=1)
        row = {"threads": t, "epochs": epochs, "cpus": allowed_cpus(), **{f"{k}_s": v for k, v in seconds.items()}}
        for k in LIBRARIES[1:]:
            row[f"initlab_over_{k}"] = seconds["initlab"] / seconds[k]
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of run()'s rows (columns of libraries that are not installed are NaN)."""
    lines = ["| threads | epochs | initlab s | sklearn s | torch s | jax s | jax (scan) s | initlab/sklearn | "
             "initlab/torch | initlab/jax | initlab/jax (scan) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['epochs']} | "
                     + " | ".join(f"{r[f'{k}_s']:.3f}" for k in LIBRARIES) + " | "
                     + " | ".join(f"{r[f'initlab_over_{k}']:.2f}" for k in LIBRARIES[1:]) + " |")
    note = jax_note([{"jax_ms": r["jax_s"], "threads": r["threads"], "cpus": r.get("cpus")} for r in rows])
    return "\n".join(lines + ([f"\n{note}"] if note else []))


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="3 epochs instead of 30")
    args = parser.parse_args(argv)
    print(format_table(run(threads=args.threads, quick=args.quick)))


if __name__ == "__main__":
    main()
