"""he_*/kaiming_* default to PyTorch's nonlinearity="leaky_relu" (API.md): with a = 0 that is the
ReLU gain sqrt(2) exactly, so every default draw keeps its bits; with a = sqrt(5) it is nn.Linear's
default."""
import hashlib
import inspect
import math

import numpy as np
import pytest

import initlab as il

# sha256 prefixes of the default draws recorded before the default changed from "relu" (commit 134d146)
GOLDEN = {
    ("he_normal", "in_out", "float32"): "64415d596cbe300f",
    ("he_normal", "in_out", "float64"): "849af1f7955831bf",
    ("he_normal", "out_in", "float32"): "26a7f11d6099ad3e",
    ("he_normal", "out_in", "float64"): "6d379f44b44333d3",
    ("he_uniform", "in_out", "float32"): "336a4cdb6450d029",
    ("he_uniform", "in_out", "float64"): "fedd00c4644ee477",
    ("he_uniform", "out_in", "float32"): "b94f1be66c361a2e",
    ("he_uniform", "out_in", "float64"): "daf694781a868342",
}


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "kaiming_normal", "kaiming_uniform"])
def test_default_nonlinearity_is_leaky_relu(name):
    params = inspect.signature(getattr(il.init, name)).parameters
    assert params["nonlinearity"].default == "leaky_relu"
    assert params["a"].default == 0.0


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_default_draws_keep_their_bits(key):
    name, layout, dtype = key
    a = getattr(il.init, name)((64, 32), seed=7, stream=3, layout=layout, dtype=dtype)
    assert hashlib.sha256(a.tobytes()).hexdigest()[:16] == GOLDEN[key]


@pytest.mark.parametrize("name", ["he_normal", "he_uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_a_zero_is_exactly_the_relu_gain(name, mode):
    assert il.init.gain("leaky_relu", 0.0) == math.sqrt(2.0) == il.init.gain("relu")
    shape = (3, 3, 20, 30)
    default = getattr(il.init, name)(shape, seed=11, mode=mode)
    relu = getattr(il.init, name)(shape, seed=11, mode=mode, nonlinearity="relu")
    np.testing.assert_array_equal(default, relu)
    assert il.init.plan(name, shape, mode=mode) == il.init.plan(name, shape, mode=mode, nonlinearity="relu")
    # and the parameter a now counts (with "relu" it was ignored): a = 1 halves the variance
    half = il.init.plan(name, shape, mode=mode, a=1.0)
    full = il.init.plan(name, shape, mode=mode)
    key = "std" if name == "he_normal" else "high"
    assert half[key] == pytest.approx(full[key] / math.sqrt(2.0), rel=1e-15)


def test_kaiming_uniform_with_a_sqrt5_is_nn_linear_default_bound():
    # torch.nn.init.kaiming_uniform_'s arithmetic, written out (torch/nn/init.py):
    # gain = sqrt(2 / (1 + a^2)), std = gain / sqrt(fan_in), bound = sqrt(3) * std
    for fan_out, fan_in in [(10, 64), (200, 300), (7, 1)]:
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
        bound = math.sqrt(3.0) * (gain / math.sqrt(fan_in))
        plan = il.init.plan("kaiming_uniform", (fan_out, fan_in), layout="out_in", a=5 ** 0.5)
        assert plan["kind"] == "uniform"
        assert plan["high"] == bound and plan["low"] == -bound
        assert bound == pytest.approx(1 / math.sqrt(fan_in), rel=1e-15)  # nn.Linear: U(±1/sqrt(fan_in))
        w = il.init.kaiming_uniform((fan_out, fan_in), layout="out_in", a=5 ** 0.5, seed=0, dtype="float64")
        assert np.abs(w).max() <= bound


def test_kaiming_uniform_with_a_sqrt5_matches_torch():
    torch = pytest.importorskip("torch")
    assert il.init.gain("leaky_relu", 5 ** 0.5) == torch.nn.init.calculate_gain("leaky_relu", 5 ** 0.5)
    for fan_out, fan_in in [(10, 64), (200, 300), (128, 784)]:
        linear = torch.nn.Linear(fan_in, fan_out)
        fan = torch.nn.init._calculate_correct_fan(linear.weight, "fan_in")
        gain = torch.nn.init.calculate_gain("leaky_relu", 5 ** 0.5)
        std = gain / math.sqrt(fan)  # torch.nn.init.kaiming_uniform_, line by line
        bound = math.sqrt(3.0) * std
        plan = il.init.plan("kaiming_uniform", tuple(linear.weight.shape), layout="out_in", a=5 ** 0.5)
        assert plan["high"] == bound
        # the same distribution: nn.Linear's weights lie in the bound and fill it
        theirs = linear.weight.detach().double().numpy()
        ours = il.init.kaiming_uniform(tuple(linear.weight.shape), layout="out_in", a=5 ** 0.5,
                                       seed=0, dtype="float64")
        for w in (theirs, ours):
            assert np.abs(w).max() <= bound * (1 + 1e-6)
            assert np.abs(w).max() > 0.95 * bound
            assert abs(w.std() / (bound / math.sqrt(3.0)) - 1) < 0.1
        # torch's own kaiming_uniform_ with its default nonlinearity gives the same bound
        t = torch.empty(fan_out, fan_in, dtype=torch.float64)
        torch.nn.init.kaiming_uniform_(t, a=5 ** 0.5)
        assert t.abs().max().item() <= bound
