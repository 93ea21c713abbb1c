"""save/load: round trip, atomic write, and every kind of corrupted, tampered or foreign file."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import initlab as il


@pytest.fixture()
def net_and_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    net = il.Network([il.Dense(8, "tanh", dropout=0.1), il.Dense(6, "leaky_relu", param=0.2),
                      il.Dense(3)], input_dim=5, seed=4)
    net.fit(X, y, epochs=2, progress=False, stats_every=0)
    return net, X, y


def test_round_trip_gives_the_same_predictions(tmp_path, net_and_data):
    net, X, y = net_and_data
    path = net.save(tmp_path / "model.npz")
    loaded = il.Network.load(path)
    assert loaded.widths == net.widths and loaded.dtype == net.dtype and loaded.seed == net.seed
    assert [l.activation for l in loaded.layers] == [l.activation for l in net.layers]
    assert [l.dropout for l in loaded.layers] == [l.dropout for l in net.layers]
    assert loaded.layers[1].act_param == 0.2
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    for a, b in zip(loaded.get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in os.listdir(tmp_path) if p != "model.npz"]   # no temporary left behind
    f64 = il.Network([5, 4, 1], output="linear", dtype="float64", seed=1)
    f64.save(tmp_path / "f64")                                          # exactly the given path
    assert il.Network.load(tmp_path / "f64").layers[0].W.dtype == np.float64


def test_failed_save_leaves_the_old_file(tmp_path, net_and_data, monkeypatch):
    net, X, y = net_and_data
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def rewrite(path, out, **changes):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(out, **arrays)
    return out


def test_corrupted_and_foreign_files(tmp_path, net_and_data):
    net, X, y = net_and_data
    path = str(net.save(tmp_path / "model.npz"))
    raw = open(path, "rb").read()
    cases = {}
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    cases["truncated.npz"] = "not a readable initlab .npz file"
    (tmp_path / "text.npz").write_text("hello")
    cases["text.npz"] = "not a readable initlab .npz file"
    np.save(tmp_path / "single.npy", np.zeros(3))
    cases["single.npy"] = "not an .npz archive"
    np.savez(tmp_path / "foreign.npz", X=X, y=y)
    cases["foreign.npz"] = r"not an initlab network file: missing keys"
    W0 = np.load(path)["W0"].copy()
    W0[0, 0] += 1.0
    cases[os.path.basename(rewrite(path, tmp_path / "tampered.npz", W0=W0))] = "checksum mismatch"
    cases[os.path.basename(rewrite(path, tmp_path / "shape.npz", W1=np.zeros((7, 6), np.float32)))] = \
        r"W1 has shape \(7, 6\), expected \(8, 6\)"
    cases[os.path.basename(rewrite(path, tmp_path / "dtype.npz", b0=np.zeros(8)))] = \
        "b0 has dtype float64, the file says float32"
    cases[os.path.basename(rewrite(path, tmp_path / "nan.npz", b1=np.full(6, np.nan, np.float32)))] = \
        "b1 contains NaN or infinity"
    cases[os.path.basename(rewrite(path, tmp_path / "missing.npz", W2=None))] = r"missing \['W2'\]"
    cases[os.path.basename(rewrite(path, tmp_path / "extra.npz", W3=np.zeros((3, 3), np.float32)))] = \
        r"unexpected \['W3'\]"
    cases[os.path.basename(rewrite(path, tmp_path / "version.npz", format_version=np.array(99)))] = \
        "format_version 99"
    cases[os.path.basename(rewrite(path, tmp_path / "widths.npz", widths=np.array([5, 8, 6])))] = \
        "keys do not match 2 layers"
    cases[os.path.basename(rewrite(path, tmp_path / "act.npz",
                                   activations=np.array(["tanh", "swish", "softmax"])))] = \
        "checksum mismatch|invalid architecture"
    cases[os.path.basename(rewrite(path, tmp_path / "pickled.npz",
                                   widths=np.array([5, 8, 6, 3], dtype=object)))] = \
        "not a readable initlab .npz file"
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            il.Network.load(tmp_path / name)
    # Flipping one byte inside a stored array: the zip CRC or the checksum catches it.
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("W0.npy")
    data = bytearray(raw)
    data[info.header_offset + 30 + len("W0.npy") + 200] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a readable|checksum mismatch|NaN"):
        il.Network.load(tmp_path / "flipped.npz")
    with pytest.raises(FileNotFoundError):
        il.Network.load(tmp_path / "nope.npz")


# ---- format version 2 ----------------------------------------------------------------------------
FIXTURE_V1 = os.path.join(os.path.dirname(__file__), "data", "network_v1.npz")


def test_version_1_files_still_load():
    # Written by initlab before format version 2 (Dense(6, tanh, dropout 0.1), Dense(5, leaky_relu,
    # param 0.2), Dense(3) on 4 inputs, seed 5, one epoch of 3 steps).
    net = il.Network.load(FIXTURE_V1)
    with np.load(FIXTURE_V1) as data:
        assert int(data["format_version"]) == 1
        weights = [data[k] for k in ("W0", "b0", "W1", "b1", "W2", "b2")]
    assert net.widths == [4, 6, 5, 3] and net.seed == 5 and (net._step, net._epochs_trained) == (3, 1)
    assert [l.activation for l in net.layers] == ["tanh", "leaky_relu", "softmax"]
    assert [l.dropout for l in net.layers] == [pytest.approx(0.1), 0.0, 0.0] and net.layers[1].act_param == 0.2
    for a, b in zip(net.get_weights(), weights):
        assert a.tobytes() == b.tobytes()
    X = np.random.default_rng(1).normal(size=(5, 4))
    W0, b0, W1, b1, W2, b2 = [w.astype(np.float64) for w in weights]
    H = np.tanh(X @ W0 + b0)
    Z = H @ W1 + b1
    Z = np.where(Z > 0, Z, 0.2 * Z) @ W2 + b2
    P = np.exp(Z - Z.max(1, keepdims=True))
    np.testing.assert_allclose(net.forward(X.astype(np.float32)), P / P.sum(1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("optimizer,kw", [("adam", {}), ("sgd", {"momentum": 0.9, "nesterov": True}),
                                          ("rmsprop", {"momentum": 0.5}), ("adamw", {"weight_decay": 0.1})])
def test_fit_after_load_continues_exactly(tmp_path, optimizer, kw):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 5)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    net = il.Network([il.Dense(8, "tanh", dropout=0.2), il.Dense(3)], input_dim=5, seed=4)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=optimizer, lr=0.01, progress=False, **kw)
    loaded = il.Network.load(net.save(tmp_path / "m.npz"))
    assert loaded._optimizer["step"] == net._optimizer["step"] > 0
    for other in (net, loaded):
        other.fit(X, y, epochs=2, batch_size=8, optimizer=optimizer, lr=0.01, progress=False, **kw)
    for a, b in zip(loaded.get_weights(), net.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_loaded_network_remembers_initializers_classes_and_pending_lsuv(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    y = np.arange(40) % 3
    net = il.Network([6, 9, 3], activation="tanh", init="lsuv", bias_init=("normal", {"std": 0.1}), seed=2)
    net.classes_ = np.array(["cat", "dog", "emu"])
    loaded = il.Network.load(net.save(tmp_path / "m.npz"))
    assert [l.init_name for l in loaded.layers] == ["lsuv", "lsuv"]
    assert [l.bias_init_name for l in loaded.layers] == ["normal(std=0.1)"] * 2
    assert loaded.classes_.tolist() == ["cat", "dog", "emu"] and loaded._lsuv_pending == [0, 1]
    for other in (net, loaded):
        other.fit(X, y, epochs=1, batch_size=8, progress=False)
    for a, b in zip(loaded.get_weights(), net.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_a_registered_layer_type_needs_no_new_version(tmp_path, monkeypatch):
    from initlab.nn import LAYERS
    from test_layers import Scale
    monkeypatch.setitem(LAYERS, "Scale", Scale)
    net = il.Network([il.Dense(4, "relu"), Scale(3.0), il.Dense(2)], input_dim=3, seed=1)
    path = net.save(tmp_path / "m.npz")
    with np.load(path) as data:
        assert int(data["format_version"]) == 2 and "W2" in data.files and "W1" not in data.files
    loaded = il.Network.load(path)
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].factor == 3.0
    X = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    monkeypatch.delitem(LAYERS, "Scale")
    with pytest.raises(ValueError, match="unknown layer type 'Scale'"):
        il.Network.load(path)


def test_damaged_optimizer_state_is_refused(tmp_path, net_and_data):
    net, X, y = net_and_data
    path = str(net.save(tmp_path / "m.npz"))
    with np.load(path) as data:
        assert "optimizer.0.0" in data.files
    for name, change, message in [
            ("gone.npz", {"optimizer.1.0": None}, r"missing \['optimizer.1.0'\]"),
            ("shape.npz", {"optimizer.0.0": np.zeros((2, 2), np.float32)}, "optimizer.0.0 has shape"),
            ("name.npz", {"optimizer": np.array('{"name": "lion", "step": 1, "started": false}')},
             "optimizer must be"),
            ("json.npz", {"manifest": np.array("[{")}, "manifest is not valid JSON")]:
        with pytest.raises(ValueError, match=message):
            il.Network.load(rewrite(path, tmp_path / name, **change))


def test_damaged_version_1_files_are_refused(tmp_path):
    with np.load(FIXTURE_V1) as data:
        W0 = data["W0"].copy()
    W0[0, 0] += 1.0
    for name, change, message in [
            ("tampered.npz", {"W0": W0}, "checksum mismatch"),
            ("shape.npz", {"W1": np.zeros((7, 5), np.float32)}, r"W1 has shape \(7, 5\), expected \(6, 5\)"),
            ("nan.npz", {"b2": np.full(3, np.nan, np.float32)}, "b2 contains NaN or infinity"),
            ("missing.npz", {"dropout": None}, r"missing keys \['dropout'\]")]:
        with pytest.raises(ValueError, match=message):
            il.Network.load(rewrite(FIXTURE_V1, tmp_path / name, **change))


def test_a_file_that_is_not_a_model_says_so_and_never_advises_unpickling(tmp_path):
    """A CSV (numpy reads it as pickled data) is refused as 'not an initlab model', without
    numpy's advice to load it 'unsafely using allow_pickle' (issue 10)."""
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="not an initlab model") as info:
        il.Network.load(path)
    assert "allow_pickle" not in str(info.value) and "pickle.load" not in str(info.value)
