"""The digits fit end to end: a 64-256-256-10 ReLU MLP, Adam (lr 1e-3), batch 64, 30 epochs on the
1797 digits (pixels / 16), in initlab, scikit-learn's MLPClassifier and PyTorch (the same loop:
shuffle, forward, cross-entropy, backward, Adam step), and JAX when installed (one jax.jit-compiled
Adam step per batch). Seconds per whole fit, the libraries taking turns in the same run.

>>> from initlab.bench import fit_digits
>>> print(fit_digits.format_table(fit_digits.run(threads=(1,), quick=True)))   # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from .timing import time_interleaved
from .train_step import thread_limits

HIDDEN = (256, 256)
EPOCHS, BATCH, LR = 30, 64, 1e-3


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


def jax_fit(epochs: int = EPOCHS) -> Optional[Callable[[], object]]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    X, y = _data()
    widths = (64, *HIDDEN, 10)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_fn(params, xb, yb):
        h = xb
        for i, (W, b) in enumerate(params):
            h = h @ W + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        log_p = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1))

    @jax.jit
    def step(params, m, v, t, xb, yb):
        grads = jax.grad(loss_fn)(params, xb, yb)
        leaves = lambda tree: jax.tree_util.tree_leaves(tree)  # noqa: E731
        new_p, new_m, new_v = [], [], []
        for p, g, mi, vi in zip(leaves(params), leaves(grads), leaves(m), leaves(v)):
            mi = b1 * mi + (1 - b1) * g
            vi = b2 * vi + (1 - b2) * g * g
            p = p - LR / (1 - b1 ** t) * mi / (jnp.sqrt(vi) / jnp.sqrt(1 - b2 ** t) + eps)
            new_p.append(p), new_m.append(mi), new_v.append(vi)
        tree = jax.tree_util.tree_structure(params)
        unflat = jax.tree_util.tree_unflatten
        return unflat(tree, new_p), unflat(tree, new_m), unflat(tree, new_v)

    tX, ty = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def fit():
        gen = np.random.default_rng(0)
        params = [(jnp.asarray((gen.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)),
                   jnp.zeros(b, jnp.float32)) for a, b in zip(widths[:-1], widths[1:])]
        m = jax.tree_util.tree_map(jnp.zeros_like, params)
        v = jax.tree_util.tree_map(jnp.zeros_like, params)
        t = 0
        for _ in range(epochs):
            order = gen.permutation(len(X))
            for lo in range(0, len(X), BATCH):
                rows = order[lo:lo + BATCH]
                t += 1
                params, m, v = step(params, m, v, float(t), tX[rows], ty[rows])
        jax.block_until_ready(params)
        return params

    return fit


def run(threads: Sequence[int] = (1, 2), quick: bool = False) -> list[dict]:
    """One dict per thread count: seconds per fit (fastest of the calls) for each library, and
    initlab's time over each of the others'. quick: 3 epochs instead of 30."""
    epochs = 3 if quick else EPOCHS
    rows = []
    for t in threads:
        with thread_limits(t):
            fits = {"initlab": initlab_fit(epochs), "sklearn": sklearn_fit(epochs), "torch": torch_fit(epochs),
                    "jax": jax_fit(epochs)}
            seconds = time_interleaved(fits, 0.0, statistic="min", rounds=1, warmup=1)
        row = {"threads": t, "epochs": epochs, **{f"{k}_s": v for k, v in seconds.items()}}
        for k in ("sklearn", "torch", "jax"):
            row[f"initlab_over_{k}"] = seconds["initlab"] / seconds[k]
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of run()'s rows (columns of libraries that are not installed are NaN)."""
    lines = ["| threads | epochs | initlab s | sklearn s | torch s | jax s | initlab/sklearn | initlab/torch | initlab/jax |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['epochs']} | {r['initlab_s']:.3f} | {r['sklearn_s']:.3f} | "
                     f"{r['torch_s']:.3f} | {r['jax_s']:.3f} | {r['initlab_over_sklearn']:.2f} | "
                     f"{r['initlab_over_torch']:.2f} | {r['initlab_over_jax']:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="3 epochs instead of 30")
    args = parser.parse_args(argv)
    print(format_table(run(threads=args.threads, quick=args.quick)))


if __name__ == "__main__":
    main()
