"""Convolution layers: initlab's conv2d kernels next to PyTorch, in the same run and thread count.

For each convolution of the two benchmark CNNs (the digits CNN: 8x8x1 images, 3x3 convolutions of
16 and 32 channels; a LeNet-like net: 28x28x1 images, 5x5 convolutions of 32 and 64 channels),
one training pass of the layer: forward (im2col + GEMM with bias and ReLU in the epilogue) and
backward (dW, db and dX), on preallocated buffers. PyTorch runs ``F.relu(F.conv2d(...))`` and
``backward`` on NCHW tensors (its default) and on ``channels_last`` tensors. Figures are the
median milliseconds per pass and GFLOP/s (3 products of 2*P*K*O flops each: forward, dW, dX;
the first layer has no dX, as in training), and "GEMM peak": the GFLOP/s of initlab's GEMM alone
on the forward's lowered product (P, K) x (K, O), the ceiling the lowering can approach.

>>> from initlab.bench import conv
>>> print(conv.format_table(conv.run(threads=(1,), quick=True)))   # doctest: +SKIP
"""
from __future__ import annotations

import time
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
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _core.gemm(A, B, C)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * p * k * case.filters / best / 1e9


def run(threads: Sequence[int] = (1, 2), quick: bool = False, cases: Optional[Sequence[str]] = None) -> list:
    """One row per (case, threads): median ms per training pass of the layer for initlab, torch
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


def main(argv: Optional[Sequence[str]] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in CASES])
    args = parser.parse_args(argv)
    print(format_table(run(threads=args.threads, quick=args.quick, cases=args.cases)))


if __name__ == "__main__":
    main()
