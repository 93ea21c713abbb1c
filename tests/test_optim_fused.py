"""The fused multi-tensor optimizer step (_core.optimizer_step) against its oracles: bitwise the
per-tensor kernels called in the training loop's order (clip_by_value, sum_of_squares + scale, then
sgd_step / adam_step / rmsprop_step), on any thread count; torch.optim with clip_grad_norm_ to the
tolerances of tests/test_kernels_torch.py; the divergence report; the binding's validation."""
from __future__ import annotations

import math

import numpy as np
import pytest

import initlab as il
from initlab import _core

# Shapes of one small network's W and b, plus one tensor larger than a chunk (2**14 elements) and
# a total above the parallel threshold (2**17), so the chunked multi-thread path runs too.
SHAPES = [(7, 5), (5,), (300, 500), (500,), (3, 1), (1,)]

CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.7, dampening=0.2, weight_decay=0.1)),
    ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adam", dict(lr=1e-2, betas=(0.3, 0.99), eps=1e-6, weight_decay=0.05)),  # lerp weight >= 0.5
    ("adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
    ("rmsprop", dict(lr=1e-2)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.8)),
]
CLIPS = [dict(), dict(clip_value=0.5), dict(clip_norm=1.0), dict(clip_norm=1e6),
         dict(clip_value=0.8, clip_norm=2.0)]


def _problem(dtype, seed=0, steps=4):
    gen = np.random.default_rng(seed)
    params = [gen.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(gen.standard_normal(s) * 2).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return params, grads


def _states(kind, params, case):
    if kind == "sgd":
        return [(np.zeros_like(p) if case.get("momentum") else None,) for p in params]
    if kind in ("adam", "adamw"):
        return [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    return [(np.zeros_like(p), np.zeros_like(p) if case.get("momentum") else None) for p in params]


def _per_tensor_step(kind, case, params, grads, states, step, clip):
    """Network._update's sequence of per-tensor kernels (the oracle of the fused call)."""
    if clip.get("clip_value") is not None:
        for g in grads:
            _core.clip_by_value(g, clip["clip_value"])
    if clip.get("clip_norm") is not None:
        total = math.sqrt(sum(_core.sum_of_squares(g) for g in grads))
        coef = clip["clip_norm"] / (total + 1e-6)
        if coef < 1.0:
            for g in grads:
                _core.scale(g, coef)
    c = dict(case)
    for p, g, st in zip(params, grads, states):
        if kind == "sgd":
            _core.sgd_step(p, g, st[0], first_step=step == 1, **c)
        elif kind in ("adam", "adamw"):
            b1, b2 = c["betas"]
            _core.adam_step(p, g, st[0], st[1], lr=c["lr"], beta1=b1, beta2=b2, eps=c["eps"],
                            weight_decay=c["weight_decay"], step=step, decoupled=kind == "adamw")
        else:
            _core.rmsprop_step(p, g, st[0], st[1], **c)


def _fused_step(kind, case, params, grads, states, step, clip):
    c = dict(case)
    if "betas" in c:
        c["beta1"], c["beta2"] = c.pop("betas")
    return _core.optimizer_step(params, grads, states, optimizer=kind, step=step,
                                first_step=step == 1, **c, **clip)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: ",".join(c) or "noclip")
@pytest.mark.parametrize("kind,case", CASES)
def test_fused_step_is_bitwise_the_per_tensor_kernels(kind, case, clip, dtype):
    params0, grad_steps = _problem(dtype)
    results = []
    for fused in (False, True):
        params = [p.copy() for p in params0]
        states = _states(kind, params, case)
        seen_grads = []
        for step, grads in enumerate(grad_steps, start=1):
            grads = [g.copy() for g in grads]
            if fused:
                out = _fused_step(kind, case, params, grads, states, step, clip)
                assert out["nonfinite"] == []
                assert (out["grad_norm"] is None) == ("clip_norm" not in clip)
            else:
                _per_tensor_step(kind, case, params, grads, states, step, clip)
            seen_grads.append(grads)
        results.append((params, states, seen_grads))
    (p_ref, s_ref, g_ref), (p_fused, s_fused, g_fused) = results
    for a, b in zip(p_ref, p_fused):
        assert a.tobytes() == b.tobytes()
    for sa, sb in zip(s_ref, s_fused):
        for a, b in zip(sa, sb):
            assert (a is None and b is None) or a.tobytes() == b.tobytes()
    for ga, gb in zip(g_ref, g_fused):  # the clipped gradients are left as clipping leaves them
        for a, b in zip(ga, gb):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("kind,case", [CASES[2], CASES[5], CASES[6], CASES[8]])
def test_fused_step_same_bits_on_one_and_two_threads(kind, case):
    params0, grad_steps = _problem(np.float32, seed=5, steps=2)
    before = il.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            il.set_num_threads(threads)
            params = [p.copy() for p in params0]
            states = _states(kind, params, case)
            for step, grads in enumerate(grad_steps, start=1):
                _fused_step(kind, case, params, [g.copy() for g in grads], states, step, dict(clip_norm=3.0))
            out.append(b"".join(p.tobytes() for p in params))
    finally:
        il.set_num_threads(before)
    assert out[0] == out[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,case", CASES)
def test_fused_step_against_torch_optim_with_clip_grad_norm(kind, case, dtype):
    torch = pytest.importorskip("torch")
    gen = np.random.default_rng(2)
    shapes = [(8, 6), (6,), (6, 3), (3,)]
    w0 = [gen.standard_normal(s).astype(dtype) for s in shapes]
    grad_steps = [[gen.standard_normal(s).astype(dtype) for s in shapes] for _ in range(6)]
    params = [w.copy() for w in w0]
    states = _states(kind, params, case)
    for step, grads in enumerate(grad_steps, start=1):
        _fused_step(kind, case, params, [g.copy() for g in grads], states, step, dict(clip_norm=1.5))
    tparams = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    make = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
            "rmsprop": torch.optim.RMSprop}[kind]
    opt = make(tparams, foreach=False, **case)
    for grads in grad_steps:
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_(tparams, 1.5)
        opt.step()
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=tol, atol=tol)


def test_fused_step_reports_parameters_that_overflow():
    # The silent divergence: weight decay 6606 with lr 1 multiplies W by -6605 per step;
    # large weights overflow float32 although the gradient is finite (zero).
    W = np.full((3, 4), 1e35, np.float32)
    b = np.ones(4, np.float32)
    grads = [np.zeros_like(W), np.zeros_like(b)]
    out = _core.optimizer_step([W, b], grads, [(None,), (None,)], optimizer="sgd", lr=1.0,
                               weight_decay=6606.0)
    assert out["nonfinite"] == [0]
    assert np.isinf(W).all() and np.isfinite(b).all()
    # NaN is reported too, and a finite step reports nothing
    p = np.array([1.0, np.nan])
    q = np.array([1.0, 2.0])
    assert _core.optimizer_step([q, p], [np.zeros(2), np.zeros(2)], [(None,), (None,)],
                                optimizer="sgd", lr=0.1)["nonfinite"] == [1]


def test_fused_step_validation():
    p, g = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    ok = dict(optimizer="adam", lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        _core.optimizer_step([p], [g], [(m, v)], optimizer="lion", lr=0.1)
    with pytest.raises(ValueError, match="same length"):
        _core.optimizer_step([p], [g, g], [(m, v)], **ok)
    with pytest.raises(ValueError, match=r"states\[0\]' must hold 2"):
        _core.optimizer_step([p], [g], [(m,)], **ok)
    with pytest.raises(TypeError, match=r"states\[0\]\[1\]"):
        _core.optimizer_step([p], [g], [(m, None)], **ok)
    with pytest.raises(ValueError, match=r"grads\[0\]' must have shape"):
        _core.optimizer_step([p], [g[:, :2].copy()], [(m, v)], **ok)
    with pytest.raises(TypeError, match="one dtype"):
        _core.optimizer_step([p, p.astype(np.float64)], [g, g.astype(np.float64)],
                             [(m, v), (m.astype(np.float64), v.astype(np.float64))], **ok)
    with pytest.raises(ValueError, match="shares memory"):  # an output of one tensor is another's
        _core.optimizer_step([p, m], [g, g.copy()], [(m, v), (np.zeros_like(p), np.zeros_like(p))], **ok)
    with pytest.raises(ValueError, match="clip_norm"):
        _core.optimizer_step([p], [g], [(m, v)], clip_norm=-1.0, **ok)
    with pytest.raises(ValueError, match="lr"):
        _core.optimizer_step([p], [g], [(m, v)], optimizer="adam", lr=float("nan"))
    with pytest.raises(ValueError, match="step"):
        _core.optimizer_step([p], [g], [(m, v)], step=0, **ok)
    with pytest.raises(ValueError, match="nesterov"):
        _core.optimizer_step([p], [g], [(m,)], optimizer="sgd", lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="lists"):
        _core.optimizer_step(p, [g], [(m, v)], **ok)
    ro = np.zeros_like(p)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.optimizer_step([ro], [g], [(m, v)], **ok)
    # nothing was written by the refused calls
    assert not p.any() and not m.any() and not v.any()
    assert _core.optimizer_step([], [], [], **ok) == {"grad_norm": None, "clipped": False, "written": True,
                                                      "nonfinite": []}


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: ",".join(c) or "noclip")
@pytest.mark.parametrize("kind,case", [CASES[3], CASES[5], CASES[6], CASES[8]])
def test_guarded_step_is_the_same_step_when_finite(kind, case, clip):
    params0, grad_steps = _problem(np.float32, seed=11, steps=3)
    out = []
    for guard in (False, True):
        params = [p.copy() for p in params0]
        states = _states(kind, params, case)
        grads_seen = []
        for step, grads in enumerate(grad_steps, start=1):
            grads = [g.copy() for g in grads]
            c = dict(case)
            if "betas" in c:
                c["beta1"], c["beta2"] = c.pop("betas")
            r = _core.optimizer_step(params, grads, states, optimizer=kind, step=step, first_step=step == 1,
                                     guard=guard, **c, **clip)
            assert r["written"] and r["nonfinite"] == []
            grads_seen += grads
        out.append(b"".join(a.tobytes() for a in params + grads_seen +
                            [x for st in states for x in st if x is not None]))
    assert out[0] == out[1]


@pytest.mark.parametrize("clip", [dict(), dict(clip_value=1.0), dict(clip_value=1.0, clip_norm=0.5)],
                         ids=["noclip", "value", "value+norm"])
def test_guarded_step_writes_nothing_when_an_update_overflows(clip):
    # The silent divergence, guarded: W *= 1 - lr*wd = -6605 would overflow float32.
    gen = np.random.default_rng(0)
    W = np.full((3, 4), 1e35, np.float32)
    b = np.ones(4, np.float32)
    grads = [gen.standard_normal(W.shape).astype(np.float32) * 3, gen.standard_normal(4).astype(np.float32)]
    bufs = [(np.full_like(W, 0.5),), (np.full_like(b, 0.5),)]
    before = [a.copy() for a in [W, b, *grads, bufs[0][0], bufs[1][0]]]
    r = _core.optimizer_step([W, b], grads, bufs, optimizer="sgd", lr=1.0, momentum=0.9,
                             weight_decay=6606.0, guard=True, **clip)
    assert r["written"] is False and r["nonfinite"] == [0]
    for a, a0 in zip([W, b, *grads, bufs[0][0], bufs[1][0]], before):
        assert a.tobytes() == a0.tobytes()
    # unguarded, the same call writes the overflow (and reports it)
    r = _core.optimizer_step([W, b], grads, bufs, optimizer="sgd", lr=1.0, momentum=0.9,
                             weight_decay=6606.0, **clip)
    assert r["written"] is True and r["nonfinite"] == [0] and not np.isfinite(W).all()


@pytest.mark.parametrize("optimizer,clip", [("sgd", False), ("adam", False), ("adam", True)])
def test_fused_step_refuses_exactly_the_overlapping_outputs(optimizer, clip):
    # Views into one buffer, placed at random: the step must refuse a call exactly when an array it
    # writes (params, states, grads when clipping) shares bytes with any other array of the call,
    # as the pairwise check over every pair says (the binding sorts and sweeps instead).
    gen = np.random.default_rng(7)
    refused = accepted = 0
    for _ in range(300):
        buf = np.zeros(96, np.float32)
        n = int(gen.integers(1, 5))
        sizes = gen.integers(1, 6, n)
        arrays = []  # per tensor: param, grad, states...
        for k in sizes:
            count = 2 if optimizer == "sgd" else 4
            starts = gen.integers(0, 96 - k, count)
            arrays.append([buf[s:s + k] for s in starts])
        written = [[True, clip] + [True] * (len(t) - 2) for t in arrays]
        flat = [(a, w) for t, ws in zip(arrays, written) for a, w in zip(t, ws)]
        expect = any(np.shares_memory(flat[i][0], flat[j][0]) and (flat[i][1] or flat[j][1])
                     for i in range(len(flat)) for j in range(i + 1, len(flat)))
        states = [(None,) if optimizer == "sgd" else tuple(t[2:]) for t in arrays]
        kwargs = dict(optimizer=optimizer, lr=0.1, clip_value=1.0 if clip else None)
        try:
            _core.optimizer_step([t[0] for t in arrays], [t[1] for t in arrays], states, **kwargs)
        except ValueError as exc:
            assert expect and "shares memory" in str(exc)
            refused += 1
        else:
            assert not expect
            accepted += 1
    assert refused > 20 and accepted > 20  # both sides exercised


def test_python_and_core_optimizer_registries_agree():
    # nn/optimizers.py's OPTIMIZERS and optim.hpp's kOptimizers hold the same names, the same number
    # of state arrays, and the same optimizers taking momentum (the bindings read kOptimizers)
    from initlab.nn.optimizers import OPTIMIZERS
    p, g = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError) as err:
        _core.optimizer_step([p], [g], [()], optimizer="no_such", lr=0.1)
    assert f"must be one of {', '.join(OPTIMIZERS)}, got 'no_such'" in str(err.value)
    for name, opt in OPTIMIZERS.items():
        states = [tuple(np.zeros(3) for _ in range(opt.n_buffers))]
        assert _core.optimizer_step([p.copy()], [g.copy()], states, optimizer=name, lr=0.1)["written"]
        wrong = [tuple(np.zeros(3) for _ in range(opt.n_buffers + 1))]
        with pytest.raises(ValueError, match=f"must hold {opt.n_buffers} arrays for {name}"):
            _core.optimizer_step([p.copy()], [g.copy()], wrong, optimizer=name, lr=0.1)
        takes_momentum = "momentum" in opt.hyperparameters
        if takes_momentum:
            _core.optimizer_step([p.copy()], [g.copy()], states, optimizer=name, lr=0.1, momentum=0.5)
        else:
            with pytest.raises(ValueError, match="'momentum' applies to sgd and rmsprop only"):
                _core.optimizer_step([p.copy()], [g.copy()], states, optimizer=name, lr=0.1, momentum=0.5)
