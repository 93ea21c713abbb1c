"""Every bad input of the Network API raises ValueError/TypeError naming the argument, before any
weight changes."""
from __future__ import annotations

import numpy as np
import pytest

import initlab as il


def data(n=20, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, n)


def snapshot(net):
    return [a.copy() for a in net.get_weights()]


def assert_unchanged(net, before):
    for a, b in zip(net.get_weights(), before):
        np.testing.assert_array_equal(a, b)


X, Y = data()
BAD_FIT = [
    # (description, X, y, kwargs, exception, message regex)
    ("X 1-D", X[:, 0], Y, {}, ValueError, r"X must be 2-D"),
    ("X 3-D", X[None], Y, {}, ValueError, r"X must be 2-D"),
    ("X wrong width", X[:, :3], Y, {}, ValueError, r"X must have 4 columns"),
    ("X strings", np.array([["a"] * 4] * 20), Y, {}, TypeError, r"X must hold numbers"),
    ("X NaN", np.where(np.arange(80).reshape(20, 4) == 7, np.nan, X), Y, {}, ValueError, r"X contains NaN"),
    ("X inf", np.where(np.arange(80).reshape(20, 4) == 7, np.inf, X), Y, {}, ValueError, r"X contains NaN or inf"),
    ("empty", X[:0], Y[:0], {}, ValueError, r"X is empty"),
    ("y wrong length", X, Y[:-1], {}, ValueError, r"y must have 20 rows"),
    ("y wrong shape", X, np.zeros((20, 5)), {}, ValueError, r"y must have shape \(20,\).*\(20, 3\)"),
    ("label too big", X, np.where(np.arange(20) == 3, 3, Y), {}, ValueError, r"labels must be integers in \[0, 3\)"),
    ("label negative", X, np.where(np.arange(20) == 3, -1, Y), {}, ValueError, r"labels must be integers in \[0, 3\)"),
    ("label non-integer", X, Y + 0.5, {}, ValueError, r"non-integer"),
    ("y NaN", X, np.where(np.arange(20) == 3, np.nan, Y), {}, ValueError, r"y contains NaN"),
    ("y strings", X, np.array(["a"] * 20), {}, ValueError,  # string labels are classes (API.md)
     r"y has 1 distinct labels \['a'\] but the softmax output has 3 units"),
    ("y mixed objects", X, np.array(["a", 1] * 10, dtype=object), {}, TypeError,
     r"y: labels must be numbers or values of one sortable type"),
    ("batch_size 0", X, Y, {"batch_size": 0}, ValueError, r"batch_size must be an int >= 1, got 0"),
    ("batch_size float", X, Y, {"batch_size": 2.5}, TypeError, r"batch_size must be an int"),
    ("epochs -1", X, Y, {"epochs": -1}, ValueError, r"epochs must be an int >= 0, got -1"),
    ("lr negative", X, Y, {"lr": -0.1}, ValueError, r"lr must be a finite number >= 0.0, got -0.1"),
    ("lr nan", X, Y, {"lr": float("nan")}, ValueError, r"lr must be a finite number"),
    ("lr inf", X, Y, {"lr": float("inf")}, ValueError, r"lr must be a finite number"),
    ("lr string", X, Y, {"lr": "0.1"}, TypeError, r"lr must be a number"),
    ("optimizer", X, Y, {"optimizer": "adagrad"}, ValueError, r"optimizer='adagrad' is not valid; valid: sgd, adam, adamw, rmsprop"),
    ("on_divergence", X, Y, {"on_divergence": "panic"}, ValueError, r"on_divergence='panic'.*stop, raise, ignore"),
    ("momentum", X, Y, {"momentum": -1}, ValueError, r"momentum must be"),
    ("nesterov without momentum", X, Y, {"nesterov": True}, ValueError, r"nesterov=True needs"),
    ("betas", X, Y, {"optimizer": "adam", "betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must be"),
    ("betas shape", X, Y, {"optimizer": "adam", "betas": 0.9}, ValueError, r"betas must be a pair"),
    ("eps", X, Y, {"eps": -1e-8}, ValueError, r"eps must be"),
    ("weight_decay", X, Y, {"weight_decay": -0.1}, ValueError, r"weight_decay must be"),
    ("clip_norm 0", X, Y, {"clip_norm": 0.0}, ValueError, r"clip_norm must be a finite number > 0"),
    ("clip_value nan", X, Y, {"clip_value": float("nan")}, ValueError, r"clip_value must be"),
    ("validation_split 1", X, Y, {"validation_split": 1.0}, ValueError, r"validation_split must be"),
    ("validation_split tiny", X, Y, {"validation_split": 0.01}, ValueError, r"validation_split=0.01 leaves"),
    ("validation X width", X, Y, {"validation_data": (X[:, :3], Y)}, ValueError, r"validation_data X must have 4 columns"),
    ("validation y length", X, Y, {"validation_data": (X, Y[:5])}, ValueError, r"validation_data y must have 20 rows"),
    ("validation labels", X, Y, {"validation_data": (X, Y + 7)}, ValueError, r"validation_data y: softmax labels"),
    ("validation not a pair", X, Y, {"validation_data": X}, ValueError, r"validation_data must be a pair"),
    ("stats_every", X, Y, {"stats_every": -1}, ValueError, r"stats_every must be an int >= 0"),
    ("progress", X, Y, {"progress": "yes"}, TypeError, r"progress must be None, True or False"),
    ("callbacks", X, Y, {"callbacks": [42]}, TypeError, r"callbacks\[0\] must be a Callback"),
]


@pytest.mark.parametrize("what,Xb,yb,kwargs,exc,msg", BAD_FIT, ids=[c[0] for c in BAD_FIT])
def test_fit_rejects_bad_input_before_changing_weights(what, Xb, yb, kwargs, exc, msg):
    net = il.Network([4, 5, 3], seed=0)
    before = snapshot(net)
    with pytest.raises(exc, match=msg):
        net.fit(Xb, yb, **{"epochs": 2, "progress": False, **kwargs})
    assert_unchanged(net, before)
    assert net._optimizer is None and net._step == 0


@pytest.mark.parametrize("method", ["evaluate", "loss", "gradients"])
def test_inference_methods_validate(method):
    net = il.Network([4, 5, 3], seed=0)
    with pytest.raises(ValueError, match="X must have 4 columns"):
        getattr(net, method)(X[:, :2], Y)
    with pytest.raises(ValueError, match="y must have 20 rows"):
        getattr(net, method)(X, Y[:3])
    with pytest.raises(ValueError, match="X must be 2-D"):
        net.forward(X[0])
    with pytest.raises(ValueError, match="X contains NaN"):
        net.predict(np.full((2, 4), np.nan))


def test_sigmoid_and_linear_label_shapes():
    sig = il.Network([4, 5, 2], output="sigmoid", seed=0)
    with pytest.raises(ValueError, match=r"y must have shape \(20, 2\)"):
        sig.loss(X, np.zeros(20))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        sig.loss(X, np.full((20, 2), 2.0))
    assert np.isfinite(il.Network([4, 5, 1], output="sigmoid", seed=0).loss(X, (Y > 0).astype(float)))
    lin = il.Network([4, 5, 2], output="linear", seed=0)
    with pytest.raises(ValueError, match=r"y must have shape \(20, 2\) for a linear output"):
        lin.loss(X, np.zeros(20))
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        lin.loss(X, np.full((20, 2), np.inf))
    with pytest.raises(ValueError, match="one-hot"):
        il.Network([4, 5, 3], seed=0).loss(X, np.full((20, 3), 0.9))


BAD_NETWORK = [
    (dict(layers=[4, 5, 3], activation="swish"), ValueError,
     r"activation='swish' is not valid; valid: linear, relu, leaky_relu, elu, selu, gelu, sigmoid, tanh, softplus"),
    (dict(layers=[4, 5, 3], output="softplus"), ValueError, r"output='softplus' is not valid; valid: softmax, sigmoid, linear"),
    (dict(layers=[4, 5, 3], init="glorious"), ValueError, r"init \(layer 0\)='glorious' is not a known initializer; valid: .*he_normal.*lsuv"),
    (dict(layers=[4, 5, 3], bias_init="nope"), ValueError, r"bias_init \(layer 0\)='nope' is not a known initializer"),
    (dict(layers=[4, 5, 3], bias_init="lsuv"), ValueError, r"bias_init='lsuv' is not valid"),
    (dict(layers=[4, 5, 3], init=3.0), TypeError, r"init \(layer 0\) must be an initializer name"),
    (dict(layers=[4, 5, 3], dtype="float16"), ValueError, r"dtype='float16' is not valid; valid: float32, float64"),
    (dict(layers=[4, 5, 3], seed=-1), ValueError, r"seed must be an int in \[0, 2\*\*64\)"),
    (dict(layers=[4, 5, 3], seed=2 ** 64), ValueError, r"seed must be an int in \[0, 2\*\*64\)"),
    (dict(layers=[4]), ValueError, r"layers must hold at least \[n_in, n_out\]"),
    (dict(layers=[4, 0, 3]), ValueError, r"layers\[1\] must be an int >= 1, got 0"),
    (dict(layers=[4, 2.5, 3]), TypeError, r"layers must be all ints"),
    (dict(layers=[il.Dense(3)]), ValueError, r"input_dim is required"),
    (dict(layers=[il.Dense(3, "softmax"), il.Dense(2)], input_dim=4), ValueError, r"activation of layer 0='softmax' is not valid"),
    (dict(layers=[il.Dense(3), il.Dense(2, "tanh")], input_dim=4), ValueError, r"output \(the last layer's activation\)='tanh'"),
    (dict(layers=[il.Dense(3), il.Dense(2, "sigmoid")], input_dim=4, output="softmax"), ValueError, r"contradicts"),
    (dict(layers=[4, 5, 3], dropout=1.0), ValueError, r"dropout must be a finite number >= 0.0 and < 1.0"),
    (dict(layers=[il.Dense(3), il.Dense(2, dropout=0.5)], input_dim=4), ValueError, r"dropout on the output layer"),
    (dict(layers=[il.Dense(3, "relu", param=0.1), il.Dense(2)], input_dim=4), ValueError,
     r"param=0.1 given for layer 0 with activation 'relu'; only leaky_relu, elu, softplus take a parameter"),
    (dict(layers=[il.Dense(3, "softplus", param=0.0), il.Dense(2)], input_dim=4), ValueError, r"softplus beta"),
]


@pytest.mark.parametrize("kwargs,exc,msg", BAD_NETWORK)
def test_network_rejects_bad_construction(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        il.Network(**kwargs)


def test_dense_rejects_bad_specs():
    with pytest.raises(ValueError, match="units must be an int >= 1"):
        il.Dense(0)
    with pytest.raises(ValueError, match="activation='swish' is not valid"):
        il.Dense(3, "swish")
    with pytest.raises(ValueError, match="dropout must be"):
        il.Dense(3, dropout=-0.1)
    with pytest.raises(AttributeError, match="spec"):
        il.Dense(3).W


def test_callable_init_returning_garbage_is_rejected():
    with pytest.raises(ValueError, match=r"returned shape \(2,\), expected \(4, 5\)"):
        il.Network([4, 5, 3], init=lambda shape, seed, stream: np.zeros(2))
    with pytest.raises(ValueError, match="returned non-finite"):
        il.Network([4, 5, 3], init=lambda shape, seed, stream: np.full(shape, np.nan))


def test_lsuv_and_diagnose_validate():
    net = il.Network([4, 5, 3], seed=0)
    before = snapshot(net)
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        il.lsuv(net, X, tol=0)
    with pytest.raises(ValueError, match="max_iter must be an int >= 1"):
        il.lsuv(net, X, max_iter=0)
    with pytest.raises(ValueError, match="X must have 4 columns"):
        il.lsuv(net, X[:, :2])
    with pytest.raises(TypeError, match="net must be an initlab Network"):
        il.lsuv("net", X)
    with pytest.raises(ValueError, match="y must have 20 rows"):
        net.diagnose(X, Y[:2])
    assert_unchanged(net, before)
