"""Time one full training step (forward, softmax cross-entropy, backward, SGD update) of an MLP built
directly from initlab's native kernels, next to PyTorch and numpy, measured in the same run with the
same thread count.

The initlab step uses preallocated buffers only (a steady-state step allocates nothing in the core):
``dense_forward`` per layer (GEMM with bias and activation in its epilogue), the fused
``softmax_cross_entropy``, ``dense_backward`` per layer in reverse (no dX for the first layer), and
one fused ``optimizer_step`` (SGD) for every parameter. PyTorch runs ``nn.Sequential`` + ``F.cross_entropy`` + ``torch.optim.SGD``
under ``torch.set_num_threads``; numpy runs the textbook formulas under threadpoolctl's limit when
threadpoolctl is installed (otherwise numpy's BLAS uses its own thread count, noted in the table).
JAX, when installed, runs the whole step (forward, the same loss, ``jax.value_and_grad``, the SGD
update) as one ``jax.jit``-compiled function with the parameters donated (updated in place, as a
JAX training loop does), waiting for the new parameters (``block_until_ready``) inside the timed
call. Each thread count runs in its own process pinned to that many CPUs (timing.run_pinned):
that is what gives XLA, which has no thread-count setting, its thread count.

>>> from initlab.bench import train_step
>>> rows = train_step.run(threads=(1,), quick=True)   # doctest: +SKIP
>>> print(train_step.format_table(rows))              # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from initlab import _core

from .timing import allowed_cpus, run_pinned, time_interleaved


@dataclass(frozen=True)
class NetSpec:
    """An MLP benchmark case: layer widths (input first), hidden activation, batch size."""

    name: str
    widths: tuple[int, ...]
    activation: str
    batch: int


NETWORKS: tuple[NetSpec, ...] = (
    NetSpec("tiny", (64, 64, 64, 10), "relu", 32),
    NetSpec("mnist", (784, 512, 512, 10), "relu", 128),
    NetSpec("wide", (784, 2048, 2048, 10), "relu", 256),
    NetSpec("deep30", (256,) * 31 + (10,), "relu", 128),  # 30 ReLU layers of 256, then the output
    NetSpec("tanh5", (784,) + (1000,) * 5 + (10,), "tanh", 64),
)

LEARNING_RATE = 0.01


def _data(spec: NetSpec, seed: int = 0):
    gen = np.random.default_rng(seed)
    X = gen.standard_normal((spec.batch, spec.widths[0])).astype(np.float32)
    y = gen.integers(0, spec.widths[-1], spec.batch).astype(np.int64)
    weights = []
    for fan_in, fan_out in zip(spec.widths[:-1], spec.widths[1:]):
        std = np.sqrt(2.0 / fan_in) if spec.activation == "relu" else np.sqrt(1.0 / fan_in)
        weights.append(((gen.standard_normal((fan_in, fan_out)) * std).astype(np.float32),
                        np.zeros(fan_out, np.float32)))
    return X, y, weights


def initlab_step(spec: NetSpec) -> Callable[[], float]:
    """A closure running one training step on preallocated buffers; returns the loss."""
    X, y, weights = _data(spec)
    n = spec.batch
    layers = len(weights)
    acts = [spec.activation] * (layers - 1) + ["linear"]
    Ws = [w for w, _ in weights]
    bs = [b for _, b in weights]
    Zs = [np.empty((n, w.shape[1]), np.float32) for w in Ws]
    # The output layer is linear: its A is its Z (allowed for "linear").
    As = [np.empty_like(z) for z in Zs[:-1]] + [Zs[-1]]
    dAs = [np.empty_like(z) for z in Zs]  # dAs[l]: gradient w.r.t. A of layer l, becomes dZ
    dWs = [np.empty_like(w) for w in Ws]
    dbs = [np.empty_like(b) for b in bs]
    P = np.empty_like(Zs[-1])
    inputs = [X] + As[:-1]
    params = [p for pair in zip(Ws, bs) for p in pair]
    grads = [g for pair in zip(dWs, dbs) for g in pair]
    states = [(None,)] * len(params)

    def step() -> float:
        for layer in range(layers):
            _core.dense_forward(inputs[layer], Ws[layer], bs[layer], Zs[layer], As[layer], acts[layer])
        loss = _core.softmax_cross_entropy(Zs[-1], y, P, dAs[-1])
        for layer in range(layers - 1, -1, -1):
            dX = dAs[layer - 1] if layer > 0 else None
            _core.dense_backward(dAs[layer], inputs[layer], Ws[layer], Zs[layer], As[layer], acts[layer], None,
                                 dWs[layer], dbs[layer], dX)
        _core.optimizer_step(params, grads, states, optimizer="sgd", lr=LEARNING_RATE)
        return loss

    return step


def numpy_step(spec: NetSpec) -> Callable[[], float]:
    """The same step in plain numpy (float32)."""
    X, y, weights = _data(spec)
    n = spec.batch
    Ws = [w for w, _ in weights]
    bs = [b for _, b in weights]
    relu = spec.activation == "relu"

    def step() -> float:
        inputs, Zs = [X], []
        for layer, (W, b) in enumerate(zip(Ws, bs)):
            Z = inputs[-1] @ W + b
            Zs.append(Z)
            if layer < len(Ws) - 1:
                inputs.append(np.maximum(Z, 0) if relu else np.tanh(Z))
        Z = Zs[-1]
        shifted = Z - Z.max(axis=1, keepdims=True)
        expz = np.exp(shifted)
        sums = expz.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(sums[:, 0]) - shifted[np.arange(n), y]))
        dZ = expz / sums
        dZ[np.arange(n), y] -= 1
        dZ /= n
        for layer in range(len(Ws) - 1, -1, -1):
            dW = inputs[layer].T @ dZ
            db = dZ.sum(axis=0)
            if layer > 0:
                dA = dZ @ Ws[layer].T
                dZ = dA * (Zs[layer - 1] > 0) if relu else dA * (1 - inputs[layer] ** 2)
            Ws[layer] -= LEARNING_RATE * dW
            bs[layer] -= LEARNING_RATE * db
        return loss

    return step


def torch_step(spec: NetSpec):
    """The same step in PyTorch, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    X, y, weights = _data(spec)
    modules = []
    for layer, (W, b) in enumerate(weights):
        linear = torch.nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        modules.append(linear)
        if layer < len(weights) - 1:
            modules.append(torch.nn.ReLU() if spec.activation == "relu" else torch.nn.Tanh())
    model = torch.nn.Sequential(*modules)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)

    def step() -> float:
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.cross_entropy(model(tX), ty)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def jax_step(spec: NetSpec):
    """The same step as one ``jax.jit``-compiled function (forward, loss, gradients, SGD update; the
    parameters donated), or None when JAX is not installed. XLA's thread pool follows the process's
    CPU affinity, not `threads` (run() pins a process per thread count)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    X, y, weights = _data(spec)
    act = jax.nn.relu if spec.activation == "relu" else jnp.tanh

    def loss_fn(params, X, y):
        h = X
        for layer, (W, b) in enumerate(params):
            h = h @ W + b
            if layer < len(params) - 1:
                h = act(h)
        log_p = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    def update(params, X, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        new = [(W - LEARNING_RATE * dW, b - LEARNING_RATE * db) for (W, b), (dW, db) in zip(params, grads)]
        return new, loss

    update = jax.jit(update, donate_argnums=0)
    state = {"params": [(jnp.asarray(W), jnp.asarray(b)) for W, b in weights]}
    tX, ty = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def step() -> float:
        state["params"], loss = update(state["params"], tX, ty)
        jax.block_until_ready((state["params"], loss))
        return float(loss)

    return step


@contextlib.contextmanager
def thread_limits(threads: int) -> Iterator[str]:
    """Set initlab's, PyTorch's and numpy's BLAS thread counts; yields a note on numpy's BLAS."""
    old = _core.get_num_threads()
    _core.set_num_threads(threads)
    torch_old = None
    try:
        import torch
        torch_old = torch.get_num_threads()
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=threads, user_api="blas")
        note = ""
    except ImportError:
        limiter, note = contextlib.nullcontext(), "numpy BLAS threads not limited (no threadpoolctl)"
    try:
        with limiter:
            yield note
    finally:
        _core.set_num_threads(old)
        if torch is not None and torch_old is not None:
            torch.set_num_threads(torch_old)


def run(threads: Sequence[int] = (1, 2), quick: bool = False,
        networks: Sequence[str] | None = None, pinned: bool = True) -> list[dict]:
    """Time every network in NETWORKS for each thread count; one dict per (network, threads) with
    the median milliseconds per step for initlab, torch, numpy and JAX (NaN when not installed) and
    the ratio initlab/torch. pinned: each thread count in a fresh process pinned to that many CPUs
    (timing.run_pinned: JAX's thread count); False: in this process, where JAX uses every CPU it may.
    row["cpus"]: the CPUs the measuring process could run on."""
    if pinned:
        return [row for t in threads for row in run_pinned("initlab.bench.train_step", "run", t, quick=quick,
                                                           networks=networks, pinned=False)]
    min_seconds = 0.3 if quick else 1.5
    rows = []
    for spec in NETWORKS:
        if networks is not None and spec.name not in networks:
            continue
        for t in threads:
            with thread_limits(t) as note:
                steps = {"initlab": initlab_step(spec), "torch": torch_step(spec), "numpy": numpy_step(spec),
                         "jax": jax_step(spec)}
                seconds = time_interleaved(steps, min_seconds, statistic="median")
            widths = ("-".join(map(str, spec.widths)) if len(spec.widths) < 8
                      else f"{spec.widths[0]}-{spec.widths[1]}x{len(spec.widths) - 2}-{spec.widths[-1]}")
            ms = {name: v * 1e3 for name, v in seconds.items()}
            rows.append({
                "network": spec.name, "widths": widths, "batch": spec.batch, "threads": t,
                "initlab_ms": ms["initlab"], "torch_ms": ms["torch"], "numpy_ms": ms["numpy"],
                "jax_ms": ms["jax"], "ratio_vs_torch": ms["initlab"] / ms["torch"],
                "ratio_vs_jax": ms["initlab"] / ms["jax"], "note": note, "cpus": allowed_cpus(),
            })
    return rows


def jax_note(rows: Sequence[dict]) -> str:
    """How JAX's thread count was obtained in these rows ("" when no row has JAX)."""
    jax_rows = [r for r in rows if r.get("jax_ms") is not None and r["jax_ms"] == r["jax_ms"]]  # not NaN
    if not jax_rows:
        return ""
    if all(r.get("cpus") is not None and len(r["cpus"]) == r["threads"] for r in jax_rows):
        return ("JAX: each thread count ran in its own process pinned to that many CPUs (XLA sizes its "
                "thread pool from the CPU affinity; every library of that row ran in the same process)")
    return "JAX: its thread count not limited (XLA used every CPU the process could use)"


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of run()'s rows (the JAX columns only when some row has JAX)."""
    with_jax = bool(jax_note(rows))
    lines = ["| network | widths | batch | threads | initlab ms | torch ms | numpy ms |"
             + (" jax ms |" if with_jax else "") + " initlab/torch |" + (" initlab/jax |" if with_jax else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if with_jax else "") + "---:|"
             + ("---:|" if with_jax else "")]
    for r in rows:
        jax_cell = f" {r['jax_ms']:.3f} |" if with_jax else ""
        jax_ratio = f" {r['initlab_ms'] / r['jax_ms']:.2f} |" if with_jax else ""
        lines.append(f"| {r['network']} | {r['widths']} | {r['batch']} | {r['threads']} | {r['initlab_ms']:.3f} | "
                     f"{r['torch_ms']:.3f} | {r['numpy_ms']:.3f} |{jax_cell} {r['ratio_vs_torch']:.2f} |{jax_ratio}")
    notes = sorted({r["note"] for r in rows if r.get("note")} | ({jax_note(rows)} - {""}))
    return "\n".join(lines + [f"\n{n}" for n in notes])


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    parser.add_argument("--networks", nargs="+", choices=[s.name for s in NETWORKS])
    args = parser.parse_args(argv)
    print(format_table(run(threads=args.threads, quick=args.quick, networks=args.networks)))


if __name__ == "__main__":
    main()
