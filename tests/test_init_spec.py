"""Initializers with parameters written as strings: NAME(key=value, ...), everywhere a name is taken."""
import numpy as np
import pytest

import initlab as il


@pytest.mark.parametrize("text, expected", [
    ("normal", ("normal", {})),
    ("normal()", ("normal", {})),
    ("normal(std=1.0)", ("normal", {"std": 1.0})),
    (" normal( std = 1.0 , mean=-2 ) ", ("normal", {"std": 1.0, "mean": -2})),
    ("he_normal(mode=fan_out)", ("he_normal", {"mode": "fan_out"})),
    ("he_normal(mode='fan_out')", ("he_normal", {"mode": "fan_out"})),
    ("kaiming_uniform(a=2.23606797749979, nonlinearity=leaky_relu)",
     ("kaiming_uniform", {"a": 2.23606797749979, "nonlinearity": "leaky_relu"})),
    ("variance_scaling(scale=2.0, distribution=uniform)",
     ("variance_scaling", {"scale": 2.0, "distribution": "uniform"})),
    ("small_random(scale=1e-3)", ("small_random", {"scale": 1e-3})),
    ("constant(value=0.05)", ("constant", {"value": 0.05})),
    ("normal_(std=2)", ("normal_", {"std": 2})),
    ("lsuv", ("lsuv", {})),
])
def test_parse_spec(text, expected):
    assert il.init.parse_spec(text) == expected


@pytest.mark.parametrize("name, params", [
    ("normal", {"std": 1.0}), ("he_normal", {"mode": "fan_out"}),
    ("variance_scaling", {"scale": 2.0, "distribution": "uniform"}), ("uniform", {"low": -1, "high": 2}),
])
def test_format_spec_round_trips(name, params):
    assert il.init.parse_spec(il.init.format_spec(name, params)) == (name, params)


def test_get_binds_the_parameters_bitwise():
    for spec, name, params in [
        ("normal(std=1.0)", "normal", {"std": 1.0}),
        ("he_normal(mode=fan_out)", "he_normal", {"mode": "fan_out"}),
        ("variance_scaling(scale=2.0, distribution=uniform)", "variance_scaling",
         {"scale": 2.0, "distribution": "uniform"}),
        ("truncated_normal(std=0.3, a=-1, b=1.5)", "truncated_normal", {"std": 0.3, "a": -1, "b": 1.5}),
    ]:
        bound = il.init.get(spec)
        direct = getattr(il.init, name)((64, 32), seed=3, stream=5, **params)
        np.testing.assert_array_equal(bound((64, 32), seed=3, stream=5), direct)
        assert bound.spec == il.init.format_spec(name, params)
    # the measured scale follows the parameter (the test can fail: the default std is 0.05)
    assert abs(il.init.get("normal(std=1.0)")((20000,), seed=0).std() - 1.0) < 0.03
    # fan_out mode: std sqrt(2/fan_out) = 0.2 for (100, 50)
    assert abs(il.init.get("he_normal(mode=fan_out)")((400, 50), seed=0).std() - 0.2) < 0.01


def test_get_in_place_form_and_call_overrides():
    a = np.empty((8, 8), np.float32)
    il.init.get("normal_(std=3.0)")(a, seed=1)
    np.testing.assert_array_equal(a, il.init.normal((8, 8), seed=1, std=3.0))
    # a keyword given at the call wins over the bound one
    np.testing.assert_array_equal(il.init.get("normal(std=3.0)")((5,), seed=0, std=0.5),
                                  il.init.normal((5,), seed=0, std=0.5))
    # no parameters: the scheme itself
    assert il.init.get("xavier_uniform()") is il.init.xavier_uniform


@pytest.mark.parametrize("spec, match", [
    ("normal(sd=1)", r"normal: unknown parameter 'sd'.*mean, std"),
    ("he_normal(gain=2)", r"he_normal: unknown parameter 'gain'"),
    ("normal(std=abc)", r"normal: std must be a number"),
    ("normal(std=)", r"normal: std has no value"),
    ("normal(1.0)", r"normal: parameters are written key=value"),
    ("normal(std=1, std=2)", r"normal: parameter 'std' given twice"),
    ("normal(std=1e999)", r"normal: std must be a finite number"),
    ("normal(std=nan)", r"normal: std must be a finite number"),
    ("normal(std=-1)", r"normal: .*std"),
    ("he_normal(mode=1)", r"he_normal: mode must be a word"),
    ("he_normal(mode=bogus)", r"he_normal: .*mode"),
    ("he_normal(nonlinearity=swish)", r"he_normal: .*nonlinearity"),
    ("variance_scaling(distribution=cauchy)", r"variance_scaling: .*distribution"),
    ("uniform(low=1, high=0)", r"uniform: low must be <= high"),
    ("normal(std=1", r"normal: initializer spec"),
    ("normal(std=(1)", r"normal:"),
    ("nosuch(x=1)", r"unknown initializer 'nosuch'; valid names: .*xavier_uniform"),
    ("zeros(value=1)", r"zeros: unknown parameter 'value'.*no parameters"),
    ("lsuv(tol=1)", r"lsuv: takes no parameters"),
])
def test_bad_specs_raise_value_errors_naming_the_initializer(spec, match):
    with pytest.raises(ValueError, match=match):
        il.init.get(spec)


def test_split_specs():
    assert il.init.split_specs("zeros,normal(std=1.0),he_normal(mode=fan_out)") == [
        "zeros", "normal(std=1.0)", "he_normal(mode=fan_out)"]
    assert il.init.split_specs("normal(std=1.0, mean=0) , lsuv") == ["normal(std=1.0, mean=0)", "lsuv"]
    with pytest.raises(ValueError, match="empty entry"):
        il.init.split_specs("zeros,,ones")
    with pytest.raises(ValueError, match="unclosed"):
        il.init.split_specs("zeros,normal(std=1")


def test_network_takes_specs_for_init_and_bias_init():
    net = il.Network([16, 32, 4], init="normal(std=1.0)", bias_init="constant(value=0.1)", seed=2)
    ref = il.Network([16, 32, 4], init=("normal", {"std": 1.0}), bias_init=("constant", {"value": 0.1}),
                     seed=2)
    for a, b in zip(net.layers, ref.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    np.testing.assert_array_equal(net.layers[0].W, il.init.normal((16, 32), seed=2, stream=0, std=1.0))
    assert np.all(net.layers[1].b == np.float32(0.1))
    assert net.layers[0].init_name == "normal(std=1.0)"
    assert net.layers[0].bias_init_name == "constant(value=0.1)"
    # a spec whose parameters use the layer's fans
    fan_out = il.Network([16, 32, 4], init="he_normal(mode=fan_out)", seed=0)
    np.testing.assert_array_equal(fan_out.layers[0].W,
                                  il.init.he_normal((16, 32), seed=0, stream=0, mode="fan_out"))


@pytest.mark.parametrize("spec, match", [
    ("normal(sd=1)", r"init .*'normal\(sd=1\)': normal: unknown parameter 'sd'"),
    ("he_normal(mode=sideways)", r"init .*'he_normal\(mode=sideways\)': he_normal: .*mode"),
    ("normal(std=x y)", r"init .*normal: std"),
])
def test_network_rejects_bad_specs_naming_the_argument_and_initializer(spec, match):
    with pytest.raises(ValueError, match=match):
        il.Network([4, 8, 2], init=spec, seed=0)
    with pytest.raises(ValueError, match=r"bias_init .*normal"):
        il.Network([4, 8, 2], bias_init=spec, seed=0)


def test_compare_takes_specs():
    from initlab.experiments.compare import _check_inits
    _check_inits(["zeros", "normal(std=1.0)", "he_normal(mode=fan_out)", "lsuv"])
    with pytest.raises(ValueError, match=r"inits: 'normal\(sd=1\)': normal: unknown parameter 'sd'"):
        _check_inits(["normal(sd=1)"])
