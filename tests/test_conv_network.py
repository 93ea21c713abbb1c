"""Convolutional networks: Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d and Flatten in a Network
(API.md, "Convolutional networks"): construction and bad input, forward and gradients against
PyTorch in float64, fit/predict/evaluate, diagnose rows, save/load, LSUV, bitwise determinism on
any thread count, and a small CNN on the digits images."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import initlab as il


def small_cnn(**kwargs):
    layers = [il.Conv2d(4, 3, padding="same", activation="relu", init="he_normal"),
              il.MaxPool2d(2),
              il.Conv2d(6, (2, 3), stride=(1, 2), padding=1, activation="tanh"),
              il.Flatten(),
              il.Dense(10, activation="softmax")]
    return il.Network(layers, input_shape=(8, 8, 1), seed=kwargs.pop("seed", 0), **kwargs)


def digits_images(n=None):
    X, y = il.datasets.load_digits(images=True)
    X = X / 16.0
    return (X, y) if n is None else (X[:n], y[:n])


def test_shapes_parameters_and_layers():
    net = small_cnn()
    assert [type(layer).__name__ for layer in net.layers] == ["Conv2d", "MaxPool2d", "Conv2d", "Flatten", "Dense"]
    assert net.layers[0].W.shape == (3, 3, 1, 4) and net.layers[0].b.shape == (4,)
    assert net.layers[2].W.shape == (2, 3, 4, 6)
    # 8x8 -same-> 8x8x4 -pool-> 4x4x4 -(2x3, stride (1,2), pad 1)-> 5x2x6 -> 60 -> 10
    assert net.layers[3].output_shape == (60,)
    assert net.layers[4].W.shape == (60, 10)
    assert [layer.output_shape for layer in net.layers] == [(8, 8, 4), (4, 4, 4), (5, 2, 6), (60,), (10,)]
    assert net.layers[2].pads == (1, 1, 1, 1)


def test_conv_initializers_use_the_kernel_fans():
    net = il.Network([il.Conv2d(64, 5, init="he_normal"), il.GlobalAvgPool2d(), il.Dense(3)],
                     input_shape=(9, 9, 16), seed=1)
    W = net.layers[0].W
    assert abs(W.std() / np.sqrt(2.0 / (5 * 5 * 16)) - 1) < 0.03
    net = il.Network([il.Conv2d(8, 3, padding="same", init="delta_orthogonal", activation="tanh"),
                      il.Conv2d(8, 3, padding="same", init="dirac", activation="linear"),
                      il.GlobalAvgPool2d(), il.Dense(2)], input_shape=(5, 5, 8), seed=0)
    W0, W1 = net.layers[0].W, net.layers[1].W
    centre = W0[1, 1]
    assert np.allclose(centre.T @ centre, np.eye(8), atol=1e-5)
    assert np.count_nonzero(W0) == np.count_nonzero(centre)
    assert np.array_equal(W1[1, 1], np.eye(8, dtype=np.float32)) and np.count_nonzero(W1) == 8
    # dirac is the identity convolution: the layer passes its input through
    X = np.random.default_rng(0).standard_normal((3, 5, 5, 8)).astype(np.float32)
    net.layers[0].W = np.where(np.arange(9).reshape(3, 3, 1, 1) == 4, np.eye(8), 0).astype(np.float32)
    net.layers[0].b = np.zeros(8)
    rows = net.diagnose(X).layers
    assert len(rows) == 3


def test_streams_count_layers_with_weights_only():
    """The i-th layer with weights draws with stream i: pooling and Flatten do not count."""
    a = il.Network([il.Conv2d(3, 2, init="he_normal"), il.MaxPool2d(2), il.Flatten(),
                    il.Dense(4, init="he_normal")], input_shape=(6, 6, 2), seed=5)
    assert np.array_equal(a.layers[0].W, il.init.he_normal((2, 2, 2, 3), seed=5, stream=0))
    assert np.array_equal(a.layers[3].W, il.init.he_normal((12, 4), seed=5, stream=1))


@pytest.mark.parametrize("layers,input_shape,match", [
    ([il.Conv2d(2, 5), il.Flatten(), il.Dense(2)], (4, 4, 1), r"layer 0.*\(5, 5\).*\(4, 4\)"),
    ([il.Conv2d(2, 3, dilation=3), il.Flatten(), il.Dense(2)], (6, 6, 1), r"layer 0.*dilation"),
    ([il.Conv2d(2, 3), il.Flatten(), il.Dense(2)], (64,), r"layer 0.*channel"),
    ([il.Conv2d(2, 3), il.MaxPool2d(4), il.Flatten(), il.Dense(2)], (5, 5, 1), r"layer 1.*\(4, 4\).*\(3, 3\)"),
    ([il.Conv2d(2, 3), il.Dense(2)], (5, 5, 1), r"layer 1"),
    ([il.Flatten(), il.Dense(3), il.GlobalAvgPool2d(), il.Dense(2)], (5, 5, 1), r"layer 2"),
])
def test_bad_geometry_is_a_value_error_at_construction(layers, input_shape, match):
    with pytest.raises(ValueError, match=match):
        il.Network(layers, input_shape=input_shape, seed=0)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="stride"):
        il.Conv2d(2, 3, stride=0)
    with pytest.raises(ValueError, match="dilation"):
        il.Conv2d(2, 3, dilation=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        il.Conv2d(2, 3, padding="full")
    with pytest.raises(ValueError, match="padding"):
        il.Conv2d(2, 3, padding=-1)
    with pytest.raises(ValueError, match="kernel_size"):
        il.Conv2d(2, (3, 3, 3))
    with pytest.raises(TypeError, match="filters"):
        il.Conv2d(2.5, 3)
    with pytest.raises(ValueError, match="pool_size"):
        il.MaxPool2d(0)
    with pytest.raises(ValueError, match="dropout"):
        il.Conv2d(2, 3, dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        il.Conv2d(2, 3, activation="softmax")


def test_wrong_input_rank_or_channels_at_predict_and_fit():
    net = small_cnn()
    X, y = digits_images(20)
    with pytest.raises(ValueError, match="shape"):
        net.predict(X.reshape(20, 64))
    with pytest.raises(ValueError, match="shape"):
        net.predict(np.concatenate([X, X], axis=3))
    with pytest.raises(ValueError, match="shape"):
        net.fit(X[:, :, :, 0], y, epochs=1, progress=False)


def to_torch(net):
    """The same net in PyTorch (NCHW), by hand: the oracle for forward and gradients."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    params = []
    for layer in net.layers:
        if hasattr(layer, "W"):
            params.append((torch.tensor(layer.W, requires_grad=True), torch.tensor(layer.b, requires_grad=True)))

    acts = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "linear": lambda v: v}

    def model(x):
        k = 0
        for position, layer in enumerate(net.layers):
            kind = type(layer).__name__
            if kind == "Conv2d":
                W, b = params[k]
                k += 1
                top, bottom, left, right = layer.pads
                x = F.conv2d(F.pad(x, (left, right, top, bottom)), W.permute(3, 2, 0, 1), b, layer.stride, 0,
                             layer.dilation)
                x = acts[layer.activation](x)
            elif kind == "MaxPool2d":
                x = F.max_pool2d(x, layer.pool_size, layer.stride)
            elif kind == "AvgPool2d":
                x = F.avg_pool2d(x, layer.pool_size, layer.stride)
            elif kind == "GlobalAvgPool2d":
                x = x.mean(dim=(2, 3))
            elif kind == "Flatten":
                if x.dim() == 4:  # on a flat input Flatten is the identity
                    x = x.permute(0, 2, 3, 1).flatten(1)  # channels-last order, as initlab
            else:
                W, b = params[k]
                k += 1
                x = x @ W + b
                if position < len(net.layers) - 1:  # the output layer gives the logits
                    x = acts[layer.activation](x)
        return x

    return torch, model, params


@pytest.mark.parametrize("pool", ["max", "avg", "global"])
def test_forward_and_gradients_against_torch_float64(pool):
    layers = [il.Conv2d(5, 3, stride=(1, 2), padding="same", activation="gelu"),
              {"max": il.MaxPool2d((2, 1)), "avg": il.AvgPool2d(2, stride=1), "global": il.GlobalAvgPool2d()}[pool],
              il.Flatten(), il.Dense(7, activation="tanh"), il.Dense(4, activation="softmax")]
    if pool == "global":
        layers.insert(0, il.Conv2d(3, 2, dilation=2, padding=(1, 0), activation="relu"))
    net = il.Network(layers, input_shape=(7, 9, 2), seed=3, dtype="float64")
    gen = np.random.default_rng(0)
    X = gen.standard_normal((6, 7, 9, 2))
    y = gen.integers(0, 4, 6)
    torch, model, params = to_torch(net)
    logits = model(torch.tensor(X).permute(0, 3, 1, 2))
    np.testing.assert_allclose(net.forward(X), torch.softmax(logits, 1).detach().numpy(), rtol=1e-10, atol=1e-12)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss.backward()
    assert abs(net.loss(X, y) - loss.item()) < 1e-10
    grads = net.gradients(X, y)
    assert len(grads) == len(params)
    for (dW, db), (tW, tb) in zip(grads, params):
        np.testing.assert_allclose(dW, tW.grad.numpy(), rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-8, atol=1e-11)


def test_fit_predict_evaluate_diagnose_save_load(tmp_path):
    X, y = digits_images(300)
    net = small_cnn()
    report = net.fit(X, y, epochs=3, batch_size=32, optimizer="adam", lr=0.01, progress=False,
                     validation_split=0.2, clip_norm=5.0)
    losses = [h["loss"] for h in report.history]
    assert losses[-1] < losses[0] and not report.diverged
    assert len(report.layer_stats[-1]) == 3  # Conv2d, Conv2d, Dense
    pred = net.predict(X)
    assert pred.shape == (300,) and net.evaluate(X, y)["accuracy"] > 0.5
    assert net.forward(X).shape == (300, 10)
    d = net.diagnose(X[:64], y[:64])
    assert [row["layer"] for row in d.layers] == [0, 2, 4]
    for row in d.layers:
        assert np.isfinite([row["pre_std"], row["act_std"], row["grad_norm"], row["grad_std"]]).all()
    path = tmp_path / "cnn.npz"
    net.save(path)
    back = il.Network.load(path)
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in net.layers]
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert back.layers[2].stride == (1, 2) and back.layers[2].pads == net.layers[2].pads


def test_dead_channel_is_zero_on_the_whole_batch():
    net = il.Network([il.Conv2d(4, 3, padding="same", activation="relu"), il.GlobalAvgPool2d(), il.Dense(3)],
                     input_shape=(6, 6, 1), seed=0)
    b = net.layers[0].b.copy()
    b[1] = -1e4  # channel 1 is zero at every position of every image
    net.layers[0].b = b
    X = np.random.default_rng(0).standard_normal((16, 6, 6, 1)).astype(np.float32)
    row = net.diagnose(X).layers[0]
    assert row["dead"] == pytest.approx(0.25)


def test_dropout_and_lsuv_in_a_cnn():
    X, y = digits_images(128)
    net = il.Network([il.Conv2d(8, 3, padding="same", activation="relu", init="lsuv", dropout=0.2),
                      il.MaxPool2d(2), il.Flatten(), il.Dense(10, activation="softmax")],
                     input_shape=(8, 8, 1), seed=0)
    report = net.fit(X, y, epochs=2, batch_size=32, progress=False)
    assert np.isfinite([h["loss"] for h in report.history]).all()
    # LSUV scaled the conv layer to unit output variance on a batch
    net2 = il.Network([il.Conv2d(8, 3, padding="same", activation="linear", init="orthogonal"),
                       il.Flatten(), il.Dense(10)], input_shape=(8, 8, 1), seed=0)
    il.lsuv(net2, X[:64])
    assert abs(net2.diagnose(X[:64]).layers[0]["pre_std"] - 1.0) < 0.1


def test_training_is_bitwise_identical_on_any_thread_count():
    X, y = digits_images(200)
    weights = []
    before = il.get_num_threads()
    try:
        for threads in (1, 2, 3):
            il.set_num_threads(threads)
            net = small_cnn(seed=7)
            net.fit(X, y, epochs=2, batch_size=50, optimizer="sgd", lr=0.05, momentum=0.9, progress=False)
            weights.append(b"".join(layer.W.tobytes() + layer.b.tobytes()
                                    for layer in net.layers if hasattr(layer, "W")))
    finally:
        il.set_num_threads(before)
    assert weights[0] == weights[1] == weights[2]


def test_small_cnn_reaches_96_percent_on_digits_images():
    X, y = digits_images()
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:360], order[360:]
    net = il.Network([il.Conv2d(16, 3, padding="same", activation="relu", init="he_normal"),
                      il.MaxPool2d(2),
                      il.Conv2d(32, 3, padding="same", activation="relu", init="he_normal"),
                      il.Flatten(),
                      il.Dense(10, activation="softmax")], input_shape=(8, 8, 1), seed=0)
    before = il.get_num_threads()
    il.set_num_threads(1)  # products this small gain nothing from a second thread (and lose on a busy machine)
    try:
        start = time.perf_counter()
        net.fit(X[train], y[train], epochs=12, batch_size=32, optimizer="adam", lr=0.003, progress=False)
        seconds = time.perf_counter() - start
    finally:
        il.set_num_threads(before)
    accuracy = net.evaluate(X[test], y[test])["accuracy"]
    assert accuracy >= 0.96, (accuracy, seconds)


def test_native_sequence_equals_layer_by_layer_forward():
    """The layers' native twins (one LayerSequence call) compute what their Python forwards do."""
    net = il.Network([il.Conv2d(3, 3, padding="same", activation="elu", dropout=0.3), il.MaxPool2d(2, stride=1),
                      il.Conv2d(4, 2, dilation=2, activation="tanh"), il.AvgPool2d(2), il.Flatten(),
                      il.Dense(5, activation="relu"), il.Dense(3)], input_shape=(9, 8, 2), seed=4)
    X = np.random.default_rng(1).standard_normal((7, 9, 8, 2)).astype(np.float32)
    ws = net._pass(7)
    assert ws.sequence is not None
    outs = []
    for native in (True, False):
        sequence = ws.sequence
        if not native:
            ws.sequence = None
        try:
            net._run_forward(ws, X, training=True)  # dropout on: the masks must agree too
        finally:
            ws.sequence = sequence
        outs.append([buf.out.copy() for buf in ws.layers] + [c.copy() for buf in ws.layers for c in buf.cache])
    for a, b in zip(*outs):
        assert a.tobytes() == b.tobytes()


def test_native_layer_constructors_validate():
    from initlab import _core
    W, b = np.zeros((3, 3, 2, 4), np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="input channels"):
        _core.conv2d_layer(W, b, np.zeros_like(W), np.zeros_like(b), (5, 5, 3), "relu", stride=(1, 1),
                           dilation=(1, 1), padding=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="'dW' shares memory"):
        _core.conv2d_layer(W, b, W, np.zeros_like(b), (5, 5, 2), "relu", stride=(1, 1), dilation=(1, 1),
                           padding=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="pool window"):
        _core.max_pool2d_layer((3, 3, 2), pool=(4, 4), stride=(1, 1), dtype="float32")
    with pytest.raises(ValueError, match="dtype"):
        _core.flatten_layer((3, 3, 2), dtype="int8")


@pytest.mark.preset
def test_xiao2018_reduced_preset(tmp_path):
    """The reduced preset runs, prints its four claims with numbers, and measures what the theory
    fixes exactly: a delta-orthogonal stack maps a zero pixel isometrically (top singular value 1),
    and at the deepest net Gaussian kernels shrink some input directions far more."""
    from initlab import experiments

    result = experiments.run_preset("xiao2018", reduced=True, progress=False)
    assert len(result.claims) == 4 and all("by depth: 4:" in c.measured for c in result.claims)
    depths = result.config["depths"]
    runs = {run["label"]: run for run in result.runs}
    for d in depths:
        assert runs[f"{d} layers|delta-orthogonal"]["at_init"]["conv_jacobian"]["sv_max"] == pytest.approx(1.0, abs=1e-5)
    deepest = depths[-1]
    assert (runs[f"{deepest} layers|Gaussian"]["at_init"]["conv_jacobian"]["sv_min"]
            < runs[f"{deepest} layers|delta-orthogonal"]["at_init"]["conv_jacobian"]["sv_min"])
    assert all(run["best_val_accuracy"] > 0.5 for run in result.runs)
    pytest.importorskip("matplotlib")
    written = result.save(tmp_path)
    assert {"xiao2018_accuracy_vs_depth.png", "xiao2018_jacobian_spread_vs_depth.png"} <= {
        os.path.basename(p) for p in written}


def test_compare_on_digits_images_trains_a_small_cnn_per_initializer(capsys):
    import sys

    from initlab import cli, experiments
    compare_module = sys.modules["initlab.experiments.compare"]

    result = experiments.compare("digits-images", inits=["he_normal", "orthogonal"], epochs=2, progress=False,
                                 threads=1)
    for run in result.runs:
        assert run["spec"]["kernel_size"] == 3 and run["widths"] == [64, *compare_module.CNN_CHANNELS, 10]
        assert run["best_val_accuracy"] > 0.9
    assert result.config["data"]["name"] == "digits-images"
    assert cli.main(["compare", "--data", "digits-images", "--epochs", "1", "--inits", "he_normal",
                     "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "CNN of 3x3 convolutions with channels 16,32" in out and "he_normal" in out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cnn_to_torch_gives_the_same_outputs(dtype):
    torch = pytest.importorskip("torch")
    net = il.Network([il.Conv2d(5, 3, stride=2, padding="same", activation="elu", dropout=0.1),  # uneven pads
                      il.MaxPool2d(2, stride=1), il.Conv2d(4, (2, 3), padding=1, dilation=(1, 2), activation="tanh"),
                      il.AvgPool2d(2), il.Flatten(), il.Dense(6, activation="relu"), il.Dense(3)],
                     input_shape=(11, 10, 2), seed=2, dtype=dtype)
    X = np.random.default_rng(3).standard_normal((4, 11, 10, 2)).astype(dtype)
    model = net.to_torch().eval()
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(X).permute(0, 3, 1, 2)), dim=1).numpy()
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(probs, net.forward(X), rtol=tol, atol=tol)
    gap = il.Network([il.Conv2d(3, 3, activation="relu"), il.GlobalAvgPool2d(), il.Dense(2)], input_shape=(5, 5, 1),
                     seed=0, dtype=dtype)
    X = X[:, :5, :5, :1].copy()
    with torch.no_grad():
        probs = torch.softmax(gap.to_torch()(torch.from_numpy(X).permute(0, 3, 1, 2)), dim=1).numpy()
    np.testing.assert_allclose(probs, gap.forward(X), rtol=tol, atol=tol)


def _train_bytes(net, X, y):
    net.fit(X, y, epochs=2, batch_size=40, optimizer="sgd", lr=0.05, momentum=0.9, progress=False)
    return b"".join(layer.W.tobytes() + layer.b.tobytes() for layer in net.layers if hasattr(layer, "W"))


def _kept_columns_net(seed):
    return il.Network([il.Conv2d(6, 3, padding="same", activation="elu", dropout=0.2), il.MaxPool2d(2),
                       il.Conv2d(5, (2, 3), stride=(1, 2), dilation=(2, 1), padding=1, activation="tanh"),
                       il.Conv2d(4, 1, activation="relu"), il.Flatten(), il.Dense(10)],
                      input_shape=(8, 8, 1), seed=seed)


def test_kept_columns_train_bitwise_as_relowering(monkeypatch):
    """Training that keeps each forward's im2col columns for the backward (native sequence and the
    layer-by-layer Python path) gives the very weights of training that lowers X again."""
    from initlab.nn.layers import conv2d
    monkeypatch.setattr(conv2d, "COLUMN_CACHE_LIMIT", 1 << 24)  # the option on (off by default)
    X, y = digits_images(200)
    kept = _train_bytes(_kept_columns_net(3), X, y)
    python_path = _kept_columns_net(3)
    python_path.layers[3].native = lambda keep_columns=False: None  # no native sequence: Python forwards
    python_path.layers[3].native_for = lambda buf: None
    kept_python = _train_bytes(python_path, X, y)
    monkeypatch.setattr(conv2d, "COLUMN_CACHE_LIMIT", 0)
    relowered = _train_bytes(_kept_columns_net(3), X, y)
    assert kept == relowered == kept_python


def test_kept_columns_only_for_batches_that_fit_and_survive_a_second_backward(monkeypatch):
    from initlab.nn.layers import conv2d
    assert conv2d.COLUMN_CACHE_LIMIT == 0  # off by default: no columns in a training batch's buffers
    assert [len(b.cache) for b in _kept_columns_net(5)._pass(16).layers[:4]] == [3, 1, 1, 1]
    monkeypatch.setattr(conv2d, "COLUMN_CACHE_LIMIT", 1 << 24)
    net = _kept_columns_net(5)
    X = np.random.default_rng(0).standard_normal((16, 8, 8, 1)).astype(np.float32)
    ws = net._pass(16)
    # Z, A, mask (3x3x1: the forward's direct kernel makes no columns); argmax; Z, columns; Z
    assert [len(b.cache) for b in ws.layers[:4]] == [3, 1, 2, 1]
    assert ws.layers[2].cache[-1].shape == (16, 4 * 2 * 6 * 6)
    net._run_forward(ws, X, training=True)
    grads = []
    for _ in range(2):  # backward twice after one forward: the columns are not overwritten
        ws.output_grad[...] = 1.0
        net._run_backward(ws, X, need_dX=True)
        grads.append(b"".join(g.tobytes() for g in net._grads) + ws.X_grad.tobytes())
    assert grads[0] == grads[1]
    monkeypatch.setattr(conv2d, "COLUMN_CACHE_LIMIT", 17 * 4 * 2 * 6 * 6 - 1)  # 17 rows: too many columns
    assert [len(b.cache) for b in net._pass(17).layers[:3]] == [3, 1, 1]
