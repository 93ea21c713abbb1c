"""il.Network.from_torch for convolutional models: the inverse of net.to_torch() for CNNs."""
from __future__ import annotations

import numpy as np
import pytest

import initlab as il

torch = pytest.importorskip("torch")
nn = torch.nn


def _cnns():
    yield "valid+max", (9, 8, 2), [il.Conv2d(4, 3, activation="relu"), il.MaxPool2d(2), il.Flatten(),
                                   il.Dense(5, activation="tanh"), il.Dense(3)]
    yield "same-uneven stride2", (11, 10, 2), [il.Conv2d(5, 3, stride=2, padding="same", activation="elu",
                                                         dropout=0.1, param=0.7),
                                               il.AvgPool2d(2, stride=1), il.Flatten(), il.Dense(3)]
    yield "same stride1 + int pad + dilation2", (10, 9, 3), [
        il.Conv2d(3, (2, 3), padding="same", activation="gelu"),
        il.Conv2d(4, 3, padding=(1, 2), dilation=2, activation="leaky_relu", param=0.2),
        il.MaxPool2d((2, 3), stride=(1, 2)), il.Flatten(), il.Dense(6, activation="relu", dropout=0.2),
        il.Dense(3)]
    yield "global", (7, 7, 1), [il.Conv2d(3, 3, padding=1, activation="sigmoid"), il.GlobalAvgPool2d(),
                                il.Dense(2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(range(4)))
def test_cnn_round_trip_is_bitwise(case, dtype):
    name, shape, layers = list(_cnns())[case]
    net = il.Network(layers, input_shape=shape, seed=case, dtype=dtype)
    back = il.Network.from_torch(net.to_torch(), output="softmax", input_shape=shape)
    assert [type(l).__name__ for l in back.layers] == [type(l).__name__ for l in net.layers], name
    assert back.input_shape == net.input_shape and back.dtype == net.dtype
    for a, b in zip(back.layers, net.layers):
        for attr in ("activation", "act_param", "dropout", "stride", "dilation", "pads", "pool_size"):
            assert getattr(a, attr, None) == getattr(b, attr, None), (name, attr)
    for a, b in zip(back.get_weights(), net.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    X = np.random.default_rng(7).standard_normal((5,) + shape).astype(dtype)
    assert np.array_equal(back.forward(X), net.forward(X))


def test_uneven_same_padding_comes_back_as_same():
    net = il.Network([il.Conv2d(2, 3, stride=2, padding="same"), il.Flatten(), il.Dense(2)],
                     input_shape=(8, 8, 1), seed=0)
    model = net.to_torch()
    assert isinstance(model[0], nn.ZeroPad2d)  # what to_torch writes for TF's uneven pads
    back = il.Network.from_torch(model, input_shape=(8, 8, 1))
    assert back.layers[0].padding == "same" and back.layers[0].pads == net.layers[0].pads == (0, 1, 0, 1)


def _torch_forward(model, X):
    with torch.no_grad():
        return model.eval()(torch.from_numpy(X).permute(0, 3, 1, 2)).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_handwritten_torch_cnn_computes_as_torch(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(6, 5, (2, 4), stride=(1, 2)), nn.Tanh(), nn.Dropout(0.3),
        nn.Conv2d(5, 4, 2, dilation=2, padding=(1, 0)), nn.SELU(), nn.AvgPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(5 * 1 * 4, 7), nn.GELU(), nn.Linear(7, 3),
    ).to(getattr(torch, dtype))
    X = np.random.default_rng(1).standard_normal((6, 12, 14, 3)).astype(dtype)
    ref = _torch_forward(model, X)
    net = il.Network.from_torch(model, output="linear", input_shape=(12, 14, 3))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(net.forward(X), ref, rtol=tol, atol=tol)
    assert net.layers[2].padding == "same" and net.layers[2].pads == (0, 1, 1, 2)  # the ZeroPad2d is TF's
    assert np.array_equal(net.layers[0].W, model[0].weight.detach().numpy().transpose(2, 3, 1, 0))
    # and back again: to_torch of the converted net is the same computation as the original model
    np.testing.assert_allclose(_torch_forward(net.to_torch(), X), ref, rtol=tol, atol=tol)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
def test_handwritten_global_pool_and_torch_same_padding():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 4, padding="same"), nn.ELU(0.5), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    X = np.random.default_rng(2).standard_normal((3, 7, 6, 2)).astype("float32")
    net = il.Network.from_torch(model, input_shape=(7, 6, 2))
    assert net.layers[0].padding == "same" and type(net.layers[1]).__name__ == "GlobalAvgPool2d"
    probs = torch.softmax(torch.from_numpy(_torch_forward(model, X)), 1).numpy()
    np.testing.assert_allclose(net.forward(X), probs, rtol=1e-5, atol=1e-6)


def test_a_model_that_starts_with_flatten_takes_images():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 2, 5), nn.Softplus(2.0), nn.Linear(5, 2))
    X = np.random.default_rng(3).standard_normal((4, 3, 4, 2)).astype("float32")
    net = il.Network.from_torch(model, output="linear", input_shape=(3, 4, 2))
    np.testing.assert_allclose(net.forward(X), _torch_forward(model, X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model, words", [
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(32, 2)), ["sequential[0]", "bias"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, groups=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(32, 2)),
     ["sequential[0]", "padding_mode"]),
    (lambda: nn.Sequential(nn.ZeroPad2d((2, 0, 0, 0)), nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 6, 2)),
     ["sequential[0]", "ZeroPad2d", "symmetric"]),
    (lambda: nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), ["sequential[0]", "ZeroPad2d"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(18, 2)),
     ["sequential[1]", "MaxPool2d"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(8, 2)),
     ["sequential[1]", "AvgPool2d"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8, 2)),
     ["sequential[1]", "AdaptiveAvgPool2d"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Linear(1, 2)),
     ["sequential[1]", "AdaptiveAvgPool2d"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)),
     ["sequential[2]", "ReLU"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(4, 2)), ["sequential[1]", "Flatten"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, 2)),
     ["sequential[1]", "BatchNorm2d"]),
    (lambda: nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(32, 2)), ["sequential[0]", "channels"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(1, 2), nn.Linear(32, 2)), ["sequential[1]", "Flatten"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(33, 2)), ["sequential[2]", "chain"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 2), nn.Conv2d(1, 2, 1)),
     ["sequential[3]", "Conv2d"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3).double(), nn.Flatten(), nn.Linear(32, 2)), ["float32", "float64"]),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), ["no nn.Linear"]),
])
def test_from_torch_refuses_cnns_it_cannot_express(model, words):
    with pytest.raises(ValueError) as info:
        il.Network.from_torch(model(), input_shape=(6, 6, 1))
    for w in words:
        assert w in str(info.value), str(info.value)


def test_input_shape_is_required_and_checked():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 2))
    with pytest.raises(ValueError, match="input_shape"):
        il.Network.from_torch(model)
    for bad in [(6, 6), (6, 0, 1), (6, 6, 1, 1)]:
        with pytest.raises(ValueError, match="input_shape"):
            il.Network.from_torch(model, input_shape=bad)
    with pytest.raises(TypeError, match="input_shape"):
        il.Network.from_torch(model, input_shape="6x6")
    dense = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="input_shape"):
        il.Network.from_torch(dense, input_shape=(6, 6, 1))
    assert il.Network.from_torch(dense, input_shape=(3,)).layers[0].W.shape == (3, 2)
    assert il.Network.from_torch(model, input_shape=(6, 6, 1)).input_shape == (6, 6, 1)
