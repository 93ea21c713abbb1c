"""The layer interface: the native sequence (layer.hpp) against each layer's own forward/backward,
a layer type written only in Python joining a network, statistics rows true for every output,
and a steady-state training step that allocates nothing."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import initlab as il
from initlab import _core
from initlab.nn import LAYERS, Layer, optimizers
from initlab.nn.layers import LayerBuffers, PassInfo


def dropout_net(dtype):
    return il.Network([il.Dense(7, "tanh", dropout=0.3), il.Dense(5, "elu", dropout=0.2, param=0.5),
                       il.Dense(3)], input_dim=4, seed=3, dtype=dtype)


def python_forward(net, ws, X, pass_):
    inp = X
    for layer, buf in zip(net.layers, ws.layers):
        layer.forward(inp, buf, pass_)
        inp = buf.out


def snapshot(ws, training):
    """What a forward writes: out and Z; A before dropout and the mask only in training."""
    return [a.copy() for buf in ws.layers for a in (buf.out,) + tuple(buf.cache[:None if training else 1])]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [False, True])
def test_native_sequence_equals_layer_by_layer(dtype, training):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4)).astype(dtype)
    net = dropout_net(dtype)
    net._step = 17
    ws = net._pass(9)
    pass_ = PassInfo(training, net.seed, net._step)
    python_forward(net, ws, X, pass_)
    expected = snapshot(ws, training)
    for buf in ws.layers:
        for a in (buf.out,) + tuple(buf.cache):
            a.fill(np.nan)
    ws.sequence.forward(X, training=training, seed=net.seed, step=net._step)
    for got, want in zip(snapshot(ws, training), expected):
        assert got.tobytes() == want.tobytes()

    # Backward: the native sequence against each layer's backward, parameter gradients and dX.
    G = rng.normal(size=ws.output_grad.shape).astype(dtype)
    ws.output_grad[...] = G
    ws.last_training = training
    net._run_backward(ws, X, need_dX=True)
    want_grads = [g.copy() for g in net._grads]
    want_dx = ws.X_grad.copy()
    for g in net._grads:
        g.fill(np.nan)
    ws.X_grad.fill(np.nan)
    python_forward(net, ws, X, pass_)   # the caches again (backward overwrote dout)
    ws.output_grad[...] = G
    ws.sequence.backward(X, ws.X_grad, training=training, seed=net.seed, step=net._step)
    for got, want in zip(net._grads, want_grads):
        assert got.tobytes() == want.tobytes()
    assert ws.X_grad.tobytes() == want_dx.tobytes()


def test_layer_sequence_validates_its_arguments():
    net = dropout_net("float32")
    ws = net._pass(5)
    with pytest.raises(ValueError, match="5 rows"):
        ws.sequence.forward(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        ws.sequence.forward(np.zeros((5, 4), np.float64))
    with pytest.raises(ValueError, match="shares memory"):
        ws.sequence.forward(ws.layers[1].out.reshape(-1)[:20].reshape(5, 4))
    natives = [layer.native() for layer in net.layers]
    buffers = [b.as_native() for b in ws.layers]
    with pytest.raises(ValueError, match="cache buffers"):
        _core.LayerSequence(natives, [buffers[0][:2] + ([],)] + buffers[1:], 5)
    with pytest.raises(ValueError, match="reads rows of"):
        _core.LayerSequence([natives[0], natives[2]], [buffers[0], buffers[2]], 5)
    with pytest.raises(ValueError, match="shares memory"):
        _core.LayerSequence(natives, [buffers[0], (buffers[1][0], buffers[1][0], buffers[1][2]), buffers[2]], 5)
    with pytest.raises(ValueError, match="dropout"):
        _core.dense_layer(net.layers[0].W, net.layers[0].b, np.zeros_like(net.layers[0].W),
                          np.zeros_like(net.layers[0].b), "tanh", dropout=1.0)


class Scale(Layer):
    """A parameterless layer written only in Python (no native twin): out = factor * x."""
    type_name = "Scale"

    def __init__(self, factor: float = 2.0) -> None:
        super().__init__()
        self.factor = factor

    def allocate(self, rows):
        shape = (rows,) + self.output_shape
        return LayerBuffers(np.empty(shape, self.dtype), np.empty(shape, self.dtype), ())

    def forward(self, x, buf, pass_):
        np.multiply(x, self.factor, out=buf.out)

    def backward(self, x, buf, dx, pass_):
        if dx is not None:
            np.multiply(buf.dout, self.factor, out=dx)

    def stats_row(self, buf, output=None):
        return {"activation": "linear", "act_std": float(buf.out.std())}

    def config(self):
        return {"factor": self.factor}


def test_a_python_only_layer_joins_a_network():
    assert LAYERS["Dense"] is il.Dense and "Scale" not in LAYERS   # the registry is the package's
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 4))
    y = rng.integers(0, 3, 6)
    net = il.Network([il.Dense(5, "tanh"), Scale(2.0), il.Dense(3)], input_dim=4, seed=7, dtype="float64")
    plain = il.Network([4, 5, 3], activation="tanh", seed=7, dtype="float64")
    # Streams count layers with weights only: the Dense after Scale draws what layer 1 of `plain` does.
    for a, b in zip(net.get_weights(), plain.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert net._pass(6).sequence is None             # no native twin: layer by layer
    plain.layers[1].W = 2.0 * plain.layers[1].W       # the same function as Scale(2) then Dense
    np.testing.assert_allclose(net.forward(X), plain.forward(X), rtol=1e-12)
    (dW0, db0), (dW1, db1) = net.gradients(X, y)
    (pW0, pb0), (pW1, pb1) = plain.gradients(X, y)
    np.testing.assert_allclose(dW0, pW0, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dW1, 2.0 * pW1, rtol=1e-10, atol=1e-14)
    report = net.fit(X, y, epochs=2, batch_size=3, progress=False)
    assert len(report.history) == 2 and np.isfinite(report.history[-1]["loss"])


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_output_rows_are_true_for_every_output(output):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = {"softmax": rng.integers(0, 3, 64), "sigmoid": (rng.random((64, 3)) > 0.5).astype(np.float32),
         "linear": rng.normal(size=(64, 3)).astype(np.float32)}[output]
    net = il.Network([5, 8, 3], activation="tanh", output=output, init="xavier_normal", seed=0)
    report = net.fit(X, y, epochs=1, batch_size=16, progress=False, probe_size=64)
    Xp = X.astype(np.float64)
    W0, b0, W1, b1 = [a.astype(np.float64) for a in net.get_weights()]
    logits = np.tanh(Xp @ W0 + b0) @ W1 + b1
    values = {"softmax": np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
              "sigmoid": 1 / (1 + np.exp(-logits)), "linear": logits}[output]
    for row in (report.layer_stats[-1][-1], net.diagnose(X, y).layers[-1]):
        assert all(np.isfinite(row[k]) for k in ("pre_mean", "pre_std", "act_mean", "act_std"))
        assert row["pre_mean"] == pytest.approx(logits.mean(), abs=1e-5)
        assert row["act_mean"] == pytest.approx(values.mean(), abs=1e-5)
        assert row["act_std"] == pytest.approx(values.std(), rel=1e-4)


def test_a_steady_state_step_allocates_no_buffers():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(256, 64)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    net = il.Network([il.Dense(256, "relu", dropout=0.1), il.Dense(10)], input_dim=64, seed=0)
    net.fit(X, y, epochs=1, batch_size=64, optimizer="adam", progress=False, stats_every=0)
    ws = net._pass(64)
    h = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, clip_value=None, clip_norm=1.0)

    def step():
        net._run_forward(ws, ws.X, training=True)
        net._run_loss(ws, ws.y_int, with_grad=True)
        net._run_backward(ws, ws.X)
        optimizers.step(net._optimizer, net._params, net._grads, h)

    step()
    tracemalloc.start()
    try:
        for _ in range(3):
            step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16_384, peak   # one (64, 256) float32 buffer alone is 65536 bytes
