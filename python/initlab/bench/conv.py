"""Convolutional networks: initlab next to PyTorch, in the same run and thread count.

Two tables. `run` (each layer): For each convolution of the two benchmark CNNs (the digits CNN: 8x8x1 images, 3x3 convolutions of
16 and 32 channels; a LeNet-like net: 28x28x1 images, 5x5 convolutions of 32 and 64 channels),
one training pass of the layer: forward (im2col + GEMM with bias and ReLU in the epilogue; the
direct kernel for the first layers, K <= 32 taps) and backward (dW, db and dX), on preallocated
buffers. PyTorch runs ``F.relu(F.conv2d(...))`` and
``backward`` on NCHW tensors (its default) and on ``channels_last`` tensors. Figures are the
median milliseconds per pass and GFLOP/s (3 products of 2*P*K*O flops each: forward, dW, dX;
the first layer has no dX, as in training), and "GEMM peak": the GFLOP/s of initlab's GEMM alone
on the forward's lowered product (P, K) x (K, O), the ceiling the lowering can approach.

`run_epochs` (whole networks): one training epoch (shuffled batches of 32, SGD with momentum
0.9, softmax cross-entropy) of the digits CNN (Conv2d(16, 3, same, relu), MaxPool2d(2),
Conv2d(32, 3, same, relu), Flatten, Dense(10)) on the 1797 digits images, and of a LeNet-like net
(Conv2d(32, 5, same, relu), MaxPool2d(2), Conv2d(64, 5, same, relu), MaxPool2d(2), Flatten,
Dense(10)) on random 28x28x1 images: `Network.fit(epochs=1, stats_every=0)` against the same
loop in PyTorch (torch.optim.SGD) on NCHW tensors and on channels_last tensors.

`run_breakdown` (`--only breakdown`): one LeNet training step stage by stage (each convolution's
forward and backward, each pooling's), initlab's kernels against PyTorch's ops, fastest calls.

>>> from initlab.bench import conv
>>> print(conv.format_table(conv.run(threads=(1,), quick=True)))   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from initlab import _core

from .timing import time_interleaved
from .train_step import thread_limits


@dataclass(frozen=True)
class ConvCase:
    """One convolution: input (batch, H, W, C), kernel k x k, `filters` outputs, "same" padding."""

    name: str
    batch: int
    h: int
    w: int
    c: int
    k: int
    filters: int
    first: bool  # the network's first layer: training needs no dX

    @property
    def padding(self) -> tuple:
        total = self.k - 1  # "same" at stride 1
        return (total // 2, total - total // 2, total // 2, total - total // 2)


CASES = (
    ConvCase("digits-conv1", 32, 8, 8, 1, 3, 16, True),
    ConvCase("digits-conv2", 32, 4, 4, 16, 3, 32, False),
    ConvCase("lenet-conv1", 32, 28, 28, 1, 5, 32, True),
    ConvCase("lenet-conv2", 32, 14, 14, 32, 5, 64, False),
)


def _data(case: ConvCase, seed: int = 0):
    gen = np.random.default_rng(seed)
    X = gen.standard_normal((case.batch, case.h, case.w, case.c)).astype(np.float32)
    W = (gen.standard_normal((case.k, case.k, case.c, case.filters)) * np.sqrt(2.0 / (case.k * case.k * case.c))
         ).astype(np.float32)
    b = np.zeros(case.filters, np.float32)
    return X, W, b


def _geometry(case: ConvCase) -> dict:
    return dict(stride=(1, 1), dilation=(1, 1), padding=case.padding)


def initlab_pass(case: ConvCase) -> Callable[[], None]:
    X, W, b = _data(case)
    geometry = _geometry(case)
    shape = tuple(_core.conv2d_output_shape(X.shape, W.shape, **geometry))
    ws = np.empty(max(1, _core.conv2d_workspace_size(X.shape, W.shape, **geometry)), np.float32)
    Z, A, dA = (np.empty(shape, np.float32) for _ in range(3))
    R = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    dW, db = np.empty_like(W), np.empty_like(b)
    dX = None if case.first else np.empty_like(X)

    def step() -> None:
        _core.conv2d_forward(X, W, b, Z, A, "relu", workspace=ws, **geometry)
        np.copyto(dA, R)
        _core.conv2d_backward(dA, X, W, Z, A, "relu", None, dW, db, dX, workspace=ws, **geometry)

    return step


def torch_pass(case: ConvCase, channels_last: bool):
    try:
        import torch
    except ImportError:
        return None
    F = torch.nn.functional
    X, W, b = _data(case)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    tX = torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(memory_format=fmt).requires_grad_(not case.first)
    tW = torch.from_numpy(W).permute(3, 2, 0, 1).contiguous(memory_format=fmt).requires_grad_()
    tb = torch.from_numpy(b).requires_grad_()
    out_shape = (case.batch, case.filters, case.h, case.w)
    R = torch.from_numpy(np.random.default_rng(1).standard_normal(out_shape).astype(np.float32))
    R = R.contiguous(memory_format=fmt)
    pad = case.padding
    symmetric = pad[0] == pad[1] and pad[2] == pad[3]

    def step() -> None:
        tW.grad = tb.grad = tX.grad = None
        x = tX if symmetric else F.pad(tX, (pad[2], pad[3], pad[0], pad[1]))
        y = F.relu(F.conv2d(x, tW, tb, 1, (pad[0], pad[2]) if symmetric else 0))
        y.backward(R)

    return step


def gemm_peak(case: ConvCase, repeats: int) -> float:
    """GFLOP/s of initlab's GEMM alone on the forward's lowered product (best of `repeats`)."""
    gen = np.random.default_rng(2)
    p, k = case.batch * case.h * case.w, case.k * case.k * case.c
    A = gen.standard_normal((p, k)).astype(np.float32)
    B = gen.standard_normal((k, case.filters)).astype(np.float32)
    C = np.empty((p, case.filters), np.float32)
    best = time_interleaved({"gemm": lambda: _core.gemm(A, B, C)}, 0.0, statistic="min", rounds=1,
                            warmup=1, calls=repeats)["gemm"]
    return 2.0 * p * k * case.filters / best / 1e9


def run(threads: Sequence[int] = (1, 2), quick: bool = False, cases: Optional[Sequence[str]] = None) -> list:
    """Per layer: one row per (case, threads): median ms per training pass of the layer for initlab, torch
    (NCHW) and torch (channels_last), initlab's GFLOP/s, the GEMM peak, and initlab/torch."""
    min_seconds = 0.3 if quick else 1.5
    rows = []
    for case in CASES:
        if cases is not None and case.name not in cases:
            continue
        products = 2 if case.first else 3
        flops = products * 2.0 * case.batch * case.h * case.w * case.k * case.k * case.c * case.filters
        for t in threads:
            with thread_limits(t) as note:
                steps: Dict[str, Optional[Callable[[], None]]] = {
                    "initlab": initlab_pass(case), "torch": torch_pass(case, False),
                    "torch_cl": torch_pass(case, True)}
                seconds = time_interleaved(steps, min_seconds, statistic="median")
                peak = gemm_peak(case, 5 if quick else 20)
            ms = {name: v * 1e3 for name, v in seconds.items()}
            rows.append({
                "layer": case.name, "input": f"{case.batch}x{case.h}x{case.w}x{case.c}",
                "kernel": f"{case.k}x{case.k}x{case.c}x{case.filters}", "threads": t,
                "initlab_ms": ms["initlab"], "torch_ms": ms["torch"], "torch_cl_ms": ms["torch_cl"],
                "initlab_gflops": flops / seconds["initlab"] / 1e9, "gemm_peak_gflops": peak,
                "ratio_vs_torch": ms["initlab"] / min(ms["torch"], ms["torch_cl"]), "note": note,
            })
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of run()'s rows (initlab/torch against torch's faster layout)."""
    lines = ["| layer | input | kernel | threads | initlab ms | torch ms (NCHW) | torch ms (channels_last) | "
             "initlab GFLOP/s | GEMM peak GFLOP/s | initlab/torch |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['input']} | {r['kernel']} | {r['threads']} | {r['initlab_ms']:.3f} | "
                     f"{r['torch_ms']:.3f} | {r['torch_cl_ms']:.3f} | {r['initlab_gflops']:.1f} | "
                     f"{r['gemm_peak_gflops']:.1f} | {r['ratio_vs_torch']:.2f} |")
    notes = sorted({r["note"] for r in rows if r.get("note")})
    return "\n".join(lines + [f"\n{n}" for n in notes])


# ---- whole networks: one training epoch ----------------------------------------------------------

@dataclass(frozen=True)
class NetCase:
    name: str
    image: tuple       # (H, W, C)
    convs: tuple       # ((filters, kernel), ...), each followed by MaxPool2d(2) except where pool is False
    pools: tuple       # one bool per conv: a MaxPool2d(2) after it
    samples: int


NETS = (
    NetCase("digits-cnn", (8, 8, 1), ((16, 3), (32, 3)), (True, False), 1797),
    NetCase("lenet-like", (28, 28, 1), ((32, 5), (64, 5)), (True, True), 1024),
)
BATCH = 32
LR, MOMENTUM = 0.01, 0.9


def _epoch_data(case: NetCase, samples: int):
    if case.name == "digits-cnn":
        from initlab import datasets
        X, y = datasets.load_digits(images=True)
        X = (X / 16.0).astype(np.float32)
        return np.ascontiguousarray(X[:samples]), np.ascontiguousarray(y[:samples])
    gen = np.random.default_rng(0)
    X = gen.standard_normal((samples,) + case.image).astype(np.float32)
    return X, gen.integers(0, 10, samples).astype(np.int64)


def initlab_epoch(case: NetCase, samples: int) -> Callable[[], None]:
    import initlab as il
    layers = []
    for (filters, k), pool in zip(case.convs, case.pools):
        layers.append(il.Conv2d(filters, k, padding="same", activation="relu", init="he_normal"))
        if pool:
            layers.append(il.MaxPool2d(2))
    layers += [il.Flatten(), il.Dense(10, activation="softmax")]
    net = il.Network(layers, input_shape=case.image, seed=0)
    X, y = _epoch_data(case, samples)

    def epoch() -> None:
        net.fit(X, y, epochs=1, batch_size=BATCH, optimizer="sgd", lr=LR, momentum=MOMENTUM, stats_every=0,
                progress=False)

    return epoch


def torch_epoch(case: NetCase, samples: int, channels_last: bool):
    try:
        import torch
    except ImportError:
        return None
    nn = torch.nn
    torch.manual_seed(0)
    modules, channels, size = [], case.image[2], case.image[0]
    for (filters, k), pool in zip(case.convs, case.pools):
        modules += [nn.Conv2d(channels, filters, k, padding="same"), nn.ReLU()]
        channels = filters
        if pool:
            modules.append(nn.MaxPool2d(2))
            size //= 2
    modules += [nn.Flatten(), nn.Linear(channels * size * size, 10)]
    model = nn.Sequential(*modules)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    X, y = _epoch_data(case, samples)
    tX = torch.from_numpy(X).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    ty = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)

    def epoch() -> None:
        order = torch.randperm(tX.shape[0], generator=gen)
        for start in range(0, tX.shape[0], BATCH):
            rows = order[start:start + BATCH]
            opt.zero_grad(set_to_none=False)
            loss = torch.nn.functional.cross_entropy(model(tX[rows].contiguous(memory_format=fmt)), ty[rows])
            loss.backward()
            opt.step()

    return epoch


def run_epochs(threads: Sequence[int] = (1, 2), quick: bool = False, nets: Optional[Sequence[str]] = None) -> list:
    """One row per (network, threads): median seconds per training epoch for initlab, torch (NCHW)
    and torch (channels_last), and initlab / the faster torch layout."""
    rows = []
    for case in NETS:
        if nets is not None and case.name not in nets:
            continue
        samples = min(case.samples, 256) if quick else case.samples
        for t in threads:
            with thread_limits(t) as note:
                steps = {"initlab": initlab_epoch(case, samples), "torch": torch_epoch(case, samples, False),
                         "torch_cl": torch_epoch(case, samples, True)}
                seconds = time_interleaved(steps, 1.0 if quick else 6.0, statistic="median")
            best_torch = min(seconds["torch"], seconds["torch_cl"])
            rows.append({"network": case.name, "samples": samples, "threads": t,
                         "initlab_s": seconds["initlab"], "torch_s": seconds["torch"],
                         "torch_cl_s": seconds["torch_cl"], "ratio_vs_torch": seconds["initlab"] / best_torch,
                         "note": note})
    return rows


def format_epoch_table(rows: Sequence[dict]) -> str:
    lines = ["| network | samples | threads | initlab s/epoch | torch s/epoch (NCHW) | torch s/epoch (channels_last) "
             "| initlab/torch |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['samples']} | {r['threads']} | {r['initlab_s']:.3f} | "
                     f"{r['torch_s']:.3f} | {r['torch_cl_s']:.3f} | {r['ratio_vs_torch']:.2f} |")
    notes = sorted({r["note"] for r in rows if r.get("note")})
    return "\n".join(lines + [f"\n{n}" for n in notes])


# ---- one LeNet step, stage by stage ---------------------------------------------------------------

def _lenet_stages(fmt=None):
    """Callables per stage of one LeNet training step (batch 32): initlab's kernels on preallocated
    buffers (fmt None), or PyTorch's ops on NCHW / channels_last tensors (autograd.grad of each op alone)."""
    gen = np.random.default_rng(0)
    f32 = np.float32
    geo = dict(stride=(1, 1), dilation=(1, 1), padding=(2, 2, 2, 2))
    X1 = gen.standard_normal((BATCH, 28, 28, 1)).astype(f32)
    W1 = (gen.standard_normal((5, 5, 1, 32)) * 0.2).astype(f32)
    X2 = gen.standard_normal((BATCH, 14, 14, 32)).astype(f32)
    W2 = (gen.standard_normal((5, 5, 32, 64)) * 0.05).astype(f32)
    b1, b2 = np.zeros(32, f32), np.zeros(64, f32)
    R1 = gen.standard_normal((BATCH, 28, 28, 32)).astype(f32)
    R2 = gen.standard_normal((BATCH, 14, 14, 64)).astype(f32)
    dP1 = gen.standard_normal((BATCH, 14, 14, 32)).astype(f32)
    dP2 = gen.standard_normal((BATCH, 7, 7, 64)).astype(f32)
    if fmt is None:
        Z1, A1, dA1 = (np.empty(R1.shape, f32) for _ in range(3))
        Z2, A2, dA2 = (np.empty(R2.shape, f32) for _ in range(3))
        ws = np.empty(_core.conv2d_workspace_size(X2.shape, W2.shape, **geo), f32)
        dW1, db1, dW2, db2, dX2 = np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2), np.empty_like(X2)
        P1, I1 = np.empty(dP1.shape, f32), np.empty(dP1.shape, np.int64)
        P2, I2 = np.empty(dP2.shape, f32), np.empty(dP2.shape, np.int64)
        _core.conv2d_forward(X1, W1, b1, Z1, A1, "relu", workspace=ws, **geo)
        _core.conv2d_forward(X2, W2, b2, Z2, A2, "relu", workspace=ws, **geo)
        pool = dict(pool=(2, 2), stride=(2, 2))
        _core.max_pool2d_forward(A1, P1, I1, **pool)
        _core.max_pool2d_forward(A2, P2, I2, **pool)

        def conv_bwd(dA, R, X, W, Z, A, dW, db, dX):
            np.copyto(dA, R)
            _core.conv2d_backward(dA, X, W, Z, A, "relu", None, dW, db, dX, workspace=ws, **geo)

        return {
            "conv1 forward": lambda: _core.conv2d_forward(X1, W1, b1, Z1, A1, "relu", workspace=ws, **geo),
            "conv1 backward (dW, db)": lambda: conv_bwd(dA1, R1, X1, W1, Z1, A1, dW1, db1, None),
            "pool1 forward": lambda: _core.max_pool2d_forward(A1, P1, I1, **pool),
            "pool1 backward": lambda: _core.max_pool2d_backward(dP1, I1, dA1, **pool),
            "conv2 forward": lambda: _core.conv2d_forward(X2, W2, b2, Z2, A2, "relu", workspace=ws, **geo),
            "conv2 backward (dW, db)": lambda: conv_bwd(dA2, R2, X2, W2, Z2, A2, dW2, db2, None),
            "conv2 backward (dW, db, dX)": lambda: conv_bwd(dA2, R2, X2, W2, Z2, A2, dW2, db2, dX2),
            "pool2 forward": lambda: _core.max_pool2d_forward(A2, P2, I2, **pool),
            "pool2 backward": lambda: _core.max_pool2d_backward(dP2, I2, dA2, **pool),
        }
    import torch
    F = torch.nn.functional

    def t(a, grad=False):
        return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(memory_format=fmt).requires_grad_(grad)

    tW1 = torch.from_numpy(W1).permute(3, 2, 0, 1).contiguous(memory_format=fmt).requires_grad_()
    tW2 = torch.from_numpy(W2).permute(3, 2, 0, 1).contiguous(memory_format=fmt).requires_grad_()
    tb1, tb2 = torch.zeros(32, requires_grad=True), torch.zeros(64, requires_grad=True)
    tX1, tX2, tA1, tA2 = t(X1), t(X2, True), t(R1, True), t(R2, True)
    y1, y2 = F.relu(F.conv2d(tX1, tW1, tb1, 1, 2)), F.relu(F.conv2d(tX2, tW2, tb2, 1, 2))
    q1, q2 = F.max_pool2d(tA1, 2), F.max_pool2d(tA2, 2)
    tR1, tR2, tdP1, tdP2 = t(R1), t(R2), t(dP1), t(dP2)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    def grad(y, inputs, dy):
        return lambda: torch.autograd.grad(y, inputs, dy, retain_graph=True)

    return {
        "conv1 forward": no_grad(lambda: F.relu(F.conv2d(tX1, tW1, tb1, 1, 2))),
        "conv1 backward (dW, db)": grad(y1, (tW1, tb1), tR1),
        "pool1 forward": no_grad(lambda: F.max_pool2d(tA1, 2)),
        "pool1 backward": grad(q1, (tA1,), tdP1),
        "conv2 forward": no_grad(lambda: F.relu(F.conv2d(tX2, tW2, tb2, 1, 2))),
        "conv2 backward (dW, db)": grad(y2, (tW2, tb2), tR2),
        "conv2 backward (dW, db, dX)": grad(y2, (tW2, tb2, tX2), tR2),
        "pool2 forward": no_grad(lambda: F.max_pool2d(tA2, 2)),
        "pool2 backward": grad(q2, (tA2,), tdP2),
    }


def run_breakdown(threads: Sequence[int] = (1, 2), quick: bool = False) -> list:
    """One row per (stage, threads) of a LeNet training step (batch 32): the fastest call's
    milliseconds for initlab's kernel, torch NCHW and torch channels_last, taking turns. initlab's
    backward includes refilling dA (its kernels overwrite dA with dZ); torch's includes ReLU's."""
    rows = []
    for t in threads:
        with thread_limits(t) as note:
            sides = {"initlab": _lenet_stages()}
            try:
                import torch
                sides["torch"] = _lenet_stages(torch.contiguous_format)
                sides["torch_cl"] = _lenet_stages(torch.channels_last)
            except ImportError:
                pass
            for stage in sides["initlab"]:
                seconds = time_interleaved({name: fns[stage] for name, fns in sides.items()}, 0.05 if quick else 0.6,
                                           statistic="min", rounds=1 if quick else 3)
                best_torch = min(seconds.get("torch", float("nan")), seconds.get("torch_cl", float("nan")))
                rows.append({"stage": stage, "threads": t, "initlab_ms": seconds["initlab"] * 1e3,
                             "torch_ms": seconds.get("torch", float("nan")) * 1e3,
                             "torch_cl_ms": seconds.get("torch_cl", float("nan")) * 1e3,
                             "ratio_vs_torch": seconds["initlab"] / best_torch, "note": note})
    return rows


def format_breakdown_table(rows: Sequence[dict]) -> str:
    lines = ["| LeNet stage (batch 32) | threads | initlab ms | torch ms (NCHW) | torch ms (channels_last) | initlab/torch |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['threads']} | {r['initlab_ms']:.3f} | {r['torch_ms']:.3f} | "
                     f"{r['torch_cl_ms']:.3f} | {r['ratio_vs_torch']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in CASES])
    parser.add_argument("--nets", nargs="+", choices=[c.name for c in NETS])
    parser.add_argument("--only", choices=["layers", "epochs", "breakdown"], default=None,
                        help="one table; the LeNet stage breakdown runs only when asked for")
    args = parser.parse_args(argv)
    if args.only == "breakdown":
        print(format_breakdown_table(run_breakdown(threads=args.threads, quick=args.quick)))
        return
    if args.only != "epochs":
        print(format_table(run(threads=args.threads, quick=args.quick, cases=args.cases)))
    if args.only != "layers":
        print(format_epoch_table(run_epochs(threads=args.threads, quick=args.quick, nets=args.nets)))


if __name__ == "__main__":
    main()
