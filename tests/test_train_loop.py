"""The native batch loop (_core.train_batches, cpp/src/train.cpp) against its oracle, the Python batch
loop (training.py _train_step, NATIVE_LOOP = False): weights, optimizer state, history and reports
bit for bit; divergence with the same culprit layer; Ctrl-C at a batch boundary."""
import math
import os
import signal
import threading

import numpy as np
import pytest

import initlab as il
from initlab import _core
from initlab.nn import training


def data(n=101, d=6, k=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = np.argmax(X[:, :k] + 0.3 * rng.normal(size=(n, k)), axis=1).astype(np.int64)
    return X, y


class Calls:
    """Counts the native loop's calls (the loop really ran natively, or really did not)."""

    def __init__(self, monkeypatch):
        self.n = 0
        self.dry_runs_skipped = 0
        real = _core.train_batches

        def counted(*args, **kwargs):
            self.n += 1
            out = real(*args, **kwargs)
            self.dry_runs_skipped += out["dry_runs_skipped"]
            return out

        monkeypatch.setattr(training._core, "train_batches", counted)


def outcome(net, report):
    state = net._optimizer
    return {"weights": [w.tobytes() for w in net.get_weights()],
            "state": [[b.tobytes() for b in bufs] for bufs in state["buffers"]],
            "opt_step": state["step"], "started": state["started"], "step": net._step,
            "history": [{k: v for k, v in h.items() if k != "seconds"} for h in report.history],
            "stop_reason": report.stop_reason, "diverged": report.diverged, "divergence": report.divergence,
            "layer_stats": len(report.layer_stats)}


def both(monkeypatch, build, X, y, **fit):
    """fit on the Python loop and on the native loop from the same start: both outcomes."""
    results = []
    for native in (False, True):
        monkeypatch.setattr(training, "NATIVE_LOOP", native)
        calls = Calls(monkeypatch)
        net = build()
        report = net.fit(X, y, progress=False, **fit)
        assert (calls.n > 0) == native
        results.append(outcome(net, report))
    return results


CASES = {
    "sgd": dict(optimizer="sgd", lr=0.1),
    "sgd_momentum_wd": dict(optimizer="sgd", lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2),
    "nesterov_clip_norm": dict(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, clip_norm=0.3),
    "adam_clip_value": dict(optimizer="adam", lr=3e-3, clip_value=0.05, weight_decay=1e-3),
    "adamw_schedule": dict(optimizer="adamw", lr=3e-3, weight_decay=0.1,
                           lr_schedule=lambda epoch: 3e-3 * 0.5 ** epoch),
    "rmsprop": dict(optimizer="rmsprop", lr=1e-3, momentum=0.5, alpha=0.9, clip_norm=1.0, clip_value=0.5),
    "class_weight": dict(optimizer="adam", lr=1e-2, class_weight="balanced"),
    "validation_stats": dict(optimizer="sgd", lr=0.1, validation_split=0.2, stats_every=1),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_native_loop_is_bitwise_the_python_loop(monkeypatch, case, dtype, threads):
    X, y = data(dtype=np.float32 if dtype == "float32" else np.float64)  # 101 rows: a partial last batch
    before = il.get_num_threads()
    il.set_num_threads(threads)
    try:
        py, native = both(monkeypatch, lambda: il.Network([6, 16, 8, 3], seed=1, dtype=dtype, dropout=0.2),
                          X, y, epochs=3, batch_size=16, **CASES[case])
    finally:
        il.set_num_threads(before)
    assert native == py
    assert len(py["history"]) == 3 and all(math.isfinite(h["loss"]) for h in py["history"])


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_native_loop_float_targets_and_sample_weights(monkeypatch, output):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 5)).astype(np.float32)
    Y = (rng.random(size=(50, 2)) < 0.5).astype(np.float32)
    w = rng.random(50)
    w[:12] = 0.0  # with shuffle=False the first batch weighs 0: no step, its rows still counted
    py, native = both(monkeypatch, lambda: il.Network([5, 7, 2], output=output, seed=2), X, Y, epochs=2,
                      batch_size=8, shuffle=False, optimizer="adam", lr=1e-2, sample_weight=w)
    assert native == py
    assert py["step"] == 2 * (7 - 1)  # 7 batches an epoch, the zero-weight one makes no step


def test_native_loop_one_hot_softmax_targets(monkeypatch):
    X, y = data(n=40)
    Y = np.eye(3)[y]
    py, native = both(monkeypatch, lambda: il.Network([6, 5, 3], seed=4), X, Y, epochs=2, batch_size=6)
    assert native == py


def test_a_batch_callback_runs_the_python_loop(monkeypatch):
    X, y = data()
    seen = []

    class Batches(il.Callback):
        def on_batch_end(self, step, logs):
            seen.append(step)

    calls = Calls(monkeypatch)
    net = il.Network([6, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=32, progress=False, callbacks=[Batches()])
    assert calls.n == 0 and seen == [1, 2, 3, 4]
    net.fit(X, y, epochs=1, batch_size=32, progress=False, callbacks=[lambda epoch, logs: None], stats_every=0)
    assert calls.n == 2  # an epoch callback alone: native (3 full batches in one call, the partial one)
    net.fit(X, y, epochs=1, batch_size=32, progress=False, stats_every=1)
    assert calls.n == 3  # a statistics epoch's last batch (it saves W_before) is the Python loop's


def test_native_loop_returns_every_chunk(monkeypatch):
    monkeypatch.setattr(training, "NATIVE_CHUNK", 2)
    X, y = data()
    py, native = both(monkeypatch, lambda: il.Network([6, 8, 3], seed=0), X, y, epochs=2, batch_size=10)
    assert native == py


# ---- divergence --------------------------------------------------------------------------------------
def test_gradient_divergence_names_the_same_layer(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X @ rng.normal(size=(4, 1)) * 1e3).astype(np.float32)
    py, native = both(monkeypatch, lambda: il.Network([4, 16, 16, 1], output="linear", seed=0), X, y,
                      epochs=50, batch_size=16, lr=10.0)
    assert native == py
    assert py["diverged"] and py["divergence"]["layers"]
    assert all(np.isfinite(np.frombuffer(w, np.float32)).all() for w in native["weights"])


def test_the_silent_divergence_of_the_update_is_caught_on_both_loops(monkeypatch):
    # issue 13's falsifying example: loss and gradients finite, the update (W * (1 - 6606)) overflows
    X, y = np.zeros((1, 3), np.float32), np.array([[1., 0., 0.]])
    py, native = both(monkeypatch, lambda: il.Network([3, 4, 3], activation="tanh", seed=0), X, y,
                      lr=1.0, weight_decay=6606.0, stats_every=0)
    assert native == py
    assert py["diverged"] and py["divergence"]["layer"] == 0
    assert "update would make the parameters of layer 0 non-finite" in py["stop_reason"]
    assert all(np.isfinite(np.frombuffer(w, np.float32)).all() for w in native["weights"])
    # the weights are those after the last finite step: the same fit stopped one step earlier
    ref = il.Network([3, 4, 3], activation="tanh", seed=0)
    ref.fit(X, y, lr=1.0, weight_decay=6606.0, epochs=py["divergence"]["epoch"] - 1, progress=False)
    assert [w.tobytes() for w in ref.get_weights()] == native["weights"]


def test_the_issue_example_as_written():
    report = il.Network([3, 4, 3], activation="tanh", seed=0).fit(
        np.zeros((1, 3), np.float32), np.array([[1., 0., 0.]]), lr=1.0, weight_decay=6606.0, progress=False)
    assert report.diverged and report.divergence["layer"] == 0


def test_ignore_keeps_going_on_both_loops(monkeypatch):
    X, y = np.zeros((1, 3), np.float32), np.array([[1., 0., 0.]])
    py, native = both(monkeypatch, lambda: il.Network([3, 4, 3], activation="tanh", seed=0), X, y,
                      lr=1.0, weight_decay=6606.0, epochs=12, on_divergence="ignore", stats_every=0)
    losses = [[repr(h["loss"]) for h in r["history"]] for r in (py, native)]  # nan == nan as text
    assert losses[0] == losses[1] and len(losses[0]) == 12
    assert native["weights"] == py["weights"] and native["step"] == py["step"] == 12
    assert not py["diverged"] and not all(np.isfinite(np.frombuffer(w, np.float32)).all()
                                          for w in native["weights"])


# ---- Ctrl-C ------------------------------------------------------------------------------------------
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals: main thread")
def test_sigint_stops_the_native_loop_at_a_batch_boundary(monkeypatch):
    monkeypatch.setattr(training, "NATIVE_CHUNK", 10 ** 9)  # only the native loop's own check can stop it
    X, y = data(n=256)
    calls = Calls(monkeypatch)
    net = il.Network([6, 32, 3], seed=0, dtype="float64")
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        report = net.fit(X, y, epochs=100000, batch_size=8, lr=0.01, progress=False, stats_every=0)
    finally:
        timer.cancel()
    assert calls.n >= 1
    assert report.stop_reason.startswith("interrupted (KeyboardInterrupt) at epoch") and "before batch" in \
        report.stop_reason, report.stop_reason
    assert not report.diverged and len(report.history) < 100000
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # exactly net._step complete steps: the weights of the Python loop stopped after as many
    steps = net._step
    assert steps >= 1

    class StopAfter(il.Callback):
        def on_batch_end(self, step, logs):
            if step == steps:
                self.stop("enough")

    ref = il.Network([6, 32, 3], seed=0, dtype="float64")
    ref.fit(X, y, epochs=100000, batch_size=8, lr=0.01, progress=False, stats_every=0, callbacks=[StopAfter()])
    assert [w.tobytes() for w in ref.get_weights()] == [w.tobytes() for w in net.get_weights()]


def test_a_keyboard_interrupt_at_the_native_call_is_reported_as_the_python_loop_reports_it(monkeypatch):
    # a second Ctrl-C raises KeyboardInterrupt at once; landing in the Python around a native call
    # (before it wrote anything) it must end fit as the Python step's does: the report, "during
    # batch b", the weights untouched; it used to escape from fit on the native loop
    X, y = data(n=64)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    reasons = []
    for native in (False, True):
        monkeypatch.setattr(training, "NATIVE_LOOP", native)
        net = il.Network([6, 8, 3], seed=0, dtype="float64")
        net.fit(X, y, epochs=1, batch_size=8, lr=0.1, progress=False, stats_every=0)  # mid-training
        before, step = [w.tobytes() for w in net.get_weights()], net._step
        with monkeypatch.context() as m:
            if native:
                m.setattr(training._core, "train_batches", interrupt)
            else:
                m.setattr(net, "_run_backward", interrupt)
            report = net.fit(X, y, epochs=3, batch_size=8, lr=0.1, progress=False, stats_every=0)
        assert [w.tobytes() for w in net.get_weights()] == before and net._step == step
        assert report.history == [] and not report.diverged
        reasons.append(report.stop_reason)
    assert reasons[0] == reasons[1] == "interrupted (KeyboardInterrupt) at epoch 2, during batch 1 of 8"


def test_a_raised_stop_flag_stops_before_the_next_batch():
    X, y = data(n=20)
    net = il.Network([6, 4, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=5, progress=False)
    ws, state = net._pass(5), net._optimizer
    before = [w.tobytes() for w in net.get_weights()]
    flag = np.ones(1, np.int32)
    out = _core.train_batches(ws.sequence, (ws.X, ws.y_int, None, ws.P), (X, y, None, np.arange(20)), first=1,
                              end=4, batch_size=5, loss="softmax", params=net._params, grads=net._grads,
                              states=state["buffers"], optimizer="sgd", lr=0.1, step=7, stop_flag=flag)
    assert out["status"] == "stopped" and out["next"] == 1 and out["step"] == 7 and out["raised"] is None
    assert [w.tobytes() for w in net.get_weights()] == before


# ---- the binding's own checks ------------------------------------------------------------------------
def test_train_batches_rejects_bad_arguments():
    X, y = data(n=20)
    net = il.Network([6, 4, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=5, progress=False)
    ws = net._pass(5)
    state = net._optimizer
    order = np.arange(20)

    def call(**over):
        kw = dict(first=0, end=4, batch_size=5, loss="softmax", params=net._params, grads=net._grads,
                  states=state["buffers"], optimizer="sgd", lr=0.1)
        kw.update(over)
        d = kw.pop("data", (X, y, None, order))
        return _core.train_batches(ws.sequence, (ws.X, ws.y_int, None, ws.P), d, **kw)

    with pytest.raises(ValueError, match="order"):
        call(data=(X, y, None, np.full(20, 20)))
    with pytest.raises(ValueError, match="do not fit"):
        call(end=5)
    with pytest.raises(ValueError, match="out of range"):
        call(data=(X, np.full(20, 3), None, order))
    with pytest.raises(ValueError, match="loss"):
        call(loss="hinge")
    with pytest.raises(ValueError, match="sequence's parameters"):
        call(params=net._params[::-1], grads=net._grads[::-1], states=state["buffers"][::-1])
    with pytest.raises(TypeError, match="stop_flag"):
        call(stop_flag=np.zeros(1, np.int64))
    out = call()
    assert out["status"] == "done" and out["next"] == 4 and out["step"] == 4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_native_loop_runs_convolutional_networks_bitwise(monkeypatch, dtype):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(37, 8, 8, 1)).astype(dtype)
    y = rng.integers(0, 3, 37)

    def build():
        return il.Network([il.Conv2d(4, 3, padding="same", activation="relu"), il.MaxPool2d(2),
                           il.Conv2d(4, 3, activation="tanh"), il.Flatten(), il.Dense(8, dropout=0.2),
                           il.Dense(3)], input_shape=(8, 8, 1), seed=0, dtype=dtype)

    py, native = both(monkeypatch, build, X, y, epochs=2, batch_size=8, optimizer="adam", lr=1e-2,
                      clip_norm=1.0)
    assert native == py


@pytest.mark.parametrize("case", list(CASES))
def test_native_loop_skips_only_dry_runs_it_proves_needless(monkeypatch, case):
    # Within one native call the loop owns the arrays, so after its first step a guarded update of
    # sgd, adam or adamw is proven finite from magnitudes (optim.hpp UpdateBounds) and runs once
    # instead of twice: the same bits as the Python loop, which always runs the guard's dry run.
    X, y = data()
    results, skipped = [], []
    for native in (False, True):
        monkeypatch.setattr(training, "NATIVE_LOOP", native)
        calls = Calls(monkeypatch)
        net = il.Network([6, 16, 8, 3], seed=1)
        results.append(outcome(net, net.fit(X, y, epochs=3, batch_size=16, progress=False, **CASES[case])))
        skipped.append(calls.dry_runs_skipped)
    assert results[0] == results[1]
    steps_per_call = 101 // 16  # the full batches of an epoch run in one call, the partial one alone
    if CASES[case]["optimizer"] == "rmsprop":
        assert skipped[1] == 0  # no bound for rmsprop: always the dry run
    elif "validation_split" in CASES[case]:
        assert skipped[1] > 0  # fewer rows, and a statistics epoch's last batch runs in Python
    else:
        assert skipped[1] == 3 * (steps_per_call - 1)  # every step of a call but its first


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_native_loop_growing_weights_fall_back_to_the_dry_run(monkeypatch, optimizer):
    # Weight decay of 6606 at lr 1 multiplies W by -6605 a step (adamw: by 1 - 6606 = -6605 too):
    # the magnitudes pass the bound for a few steps, then fail it long before float32 overflows, and
    # the run diverges as the Python loop's does, bit for bit.
    X, y = data()
    results, skipped = [], []
    for native in (False, True):
        monkeypatch.setattr(training, "NATIVE_LOOP", native)
        calls = Calls(monkeypatch)
        net = il.Network([6, 3], seed=1)
        report = net.fit(X, y, epochs=2, batch_size=4, optimizer=optimizer, lr=1.0, weight_decay=6606.0,
                         progress=False)
        results.append(outcome(net, report))
        skipped.append(calls.dry_runs_skipped)
        assert report.diverged  # (the logits overflow first: a non-finite loss)
        assert all(np.isfinite(w).all() for w in net.get_weights())
    assert repr(results[0]) == repr(results[1])  # (repr: the loss is NaN, which equals nothing)
    # one native call: its first step and the steps after the bound failed ran the dry run
    assert 0 < skipped[1] < results[1]["opt_step"] - 1

