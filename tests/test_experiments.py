"""il.experiments: runs, grids on processes and Dask, files and figures, and the presets' claims."""
import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

import initlab as il
from initlab import experiments
from initlab.experiments import RunSpec
from initlab.experiments import grid as grid_module, runs as runs_module
from initlab.experiments.presets._common import _losses, _one
from initlab.inspect.diagnose import VERDICTS
from initlab.inspect.report import _json_safe

TINY = dict(depth=2, width=16, epochs=2, batch_size=32, lr=0.01, momentum=0.9)


@pytest.fixture(scope="module")
def small_data():
    return experiments.prepare_data("digits", max_samples=300, seed=0)


def _strip_times(run):
    """A run without its wall-clock fields (everything else must be bitwise reproducible)."""
    run = json.loads(json.dumps(_json_safe(run)))
    run.pop("seconds")
    run.pop("train_seconds")
    for h in run["history"]:
        h.pop("seconds")
    run["spec"].pop("threads")  # the executors choose the thread count; results must not depend on it
    return run


# ---------------------------------------------------------------- data

def test_prepare_data_split_and_standardization():
    data = experiments.prepare_data("digits", val_fraction=0.25, seed=3)
    assert data.X_train.shape == (1348, 64) and data.X_val.shape == (449, 64)
    assert data.classes == 10 and data.X_train.dtype == np.float32
    varying = data.X_train.std(axis=0) > 0
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=0)[varying], 1, atol=1e-4)
    again = experiments.prepare_data("digits", val_fraction=0.25, seed=3)
    assert np.array_equal(data.X_val, again.X_val) and np.array_equal(data.y_train, again.y_train)
    # the split is a partition of the 1797 samples
    X, y = il.datasets.load_digits()
    assert sorted(np.bincount(np.concatenate([data.y_train, data.y_val])).tolist()) == sorted(np.bincount(y).tolist())


@pytest.mark.parametrize("kwargs, match", [
    (dict(val_fraction=0.0), "val_fraction"),
    (dict(val_fraction=1.5), "val_fraction"),
    (dict(max_samples=1), "max_samples"),
])
def test_prepare_data_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        experiments.prepare_data("digits", **kwargs)


# ---------------------------------------------------------------- one run

def test_run_one_records_init_statistics_and_history(small_data):
    spec = RunSpec(init="he_normal", target_accuracy=0.5, **TINY)
    run = experiments.run_one(spec, small_data)
    assert run["widths"] == [64, 16, 16, 10]
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    a = run["at_init"]
    assert len(a["grad_norm"]) == 3 and len(a["act_std"]) == 3
    # the gradient norms are those of Network.gradients on the probe batch (the first 256 rows)
    net = il.Network(run["widths"], activation="relu", output="softmax", init="he_normal", seed=0)
    probe = slice(0, 256)
    expected = [float(np.linalg.norm(dW)) for dW, _ in net.gradients(small_data.X_train[probe],
                                                                     small_data.y_train[probe])]
    np.testing.assert_allclose(a["grad_norm"], expected, rtol=1e-5)
    assert run["grad_ratio"] == pytest.approx(expected[0] / expected[-1], rel=1e-5)
    np.testing.assert_allclose(a["loss"], net.loss(small_data.X_train[probe], small_data.y_train[probe]), rtol=1e-6)
    # histograms: one per hidden layer, each counting every activation of the probe batch
    counts = np.asarray(a["histograms"]["counts"])
    assert counts.shape == (2, runs_module.HISTOGRAM_BINS)
    rows = min(256, small_data.X_train.shape[0])
    outside = np.asarray(a["histograms"]["outside"])
    assert (counts.sum(axis=1) + outside).tolist() == [rows * 16, rows * 16]
    assert (outside <= 0.02 * rows * 16).all()    # the range holds the 0.5..99.5 percentiles
    assert a["verdict"] in ("healthy", "vanishing", "exploding", "saturated", "dead")
    # summary fields agree with the history
    assert run["final_loss"] == run["history"][-1]["loss"]
    first_ok = next((h["epoch"] for h in run["history"] if h["val_accuracy"] >= 0.5), None)
    assert run["epochs_to_target"] == first_ok


def test_histograms_count_the_networks_own_layer_outputs(small_data):
    # the at-init histograms are built from the buffers of the network's forward (the kernels that
    # train it, which diagnose reads): its hidden outputs bitwise, so the counts are exactly theirs
    import reference as ref
    spec = RunSpec(init="he_normal", activation="tanh", **dict(TINY, epochs=0))
    run = experiments.run_one(spec, small_data)
    net = il.Network(run["widths"], activation="tanh", output="softmax", init="he_normal", seed=0)
    X = small_data.X_train[:256]
    outputs = net._activations(X)
    assert len(outputs) == len(net.layers) == 3
    # the last buffer is the logits: softmax of it is exactly net.forward
    probabilities = net._output_values(net._pass(X.shape[0])).copy()
    np.testing.assert_array_equal(probabilities, net.forward(X))
    # each hidden output is act(A W + b) of the one below (float64 oracle, float32 tolerance)
    A = X.astype(np.float64)
    for layer, out in zip(net.layers[:-1], outputs[:-1]):
        A = ref.dense_forward(A, layer.W, layer.b, "tanh")[1]
        np.testing.assert_allclose(out, A, rtol=1e-5, atol=1e-6)
    expected = runs_module._histograms(outputs[:-1], "tanh")
    assert run["at_init"]["histograms"] == expected
    edges = np.asarray(expected["edges"])
    for counts, out in zip(run["at_init"]["histograms"]["counts"], outputs[:-1]):
        assert counts == np.histogram(out.ravel(), bins=edges)[0].tolist()


def test_run_one_is_deterministic_and_thread_independent(small_data):
    spec = RunSpec(init="xavier_uniform", activation="tanh", **TINY)
    a = experiments.run_one(replace(spec, threads=1), small_data)
    b = experiments.run_one(replace(spec, threads=2), small_data)
    assert _strip_times(a) == _strip_times(b)


def test_loss_threshold_stops_training(small_data):
    spec = RunSpec(init="he_normal", loss_threshold=1.5, **dict(TINY, epochs=30))
    run = experiments.run_one(spec, small_data)
    assert run["epochs_to_loss"] is not None and run["epochs_run"] == run["epochs_to_loss"] < 30
    losses = [h["loss"] for h in run["history"]]
    assert losses[-1] <= 1.5 and all(loss > 1.5 for loss in losses[:-1])
    assert "threshold" in run["stop_reason"]


def test_lsuv_run_has_unit_variance_layers_at_init_and_trains_as_plain_fit(small_data):
    spec = RunSpec(init="lsuv", **dict(TINY, depth=4))
    run = experiments.run_one(spec, small_data)
    pre_var = np.square(run["at_init"]["pre_std"])
    # unit variance on LSUV's own 32-row batch; within a factor 2 on the 240-row probe batch
    assert np.all((pre_var > 0.5) & (pre_var < 2.0)), pre_var
    # run_one applies LSUV before its statistics; fit's own LSUV pass must then change nothing
    net = il.Network(run["widths"], activation="relu", output="softmax", init="lsuv", seed=0)
    report = net.fit(small_data.X_train, small_data.y_train, epochs=2, batch_size=32, lr=0.01, momentum=0.9,
                     validation_data=(small_data.X_val, small_data.y_val), stats_every=0, progress=False)
    assert [h["loss"] for h in report.history] == [h["loss"] for h in run["history"]]


# ---------------------------------------------------------------- grids and executors

def test_compare_files_and_figures(small_data, tmp_path):
    pytest.importorskip("matplotlib")
    result = experiments.compare(small_data, inits=["he_normal", "small_random"], seeds=[0, 1],
                                 progress=False, **TINY)
    assert [(r["init"], r["seed"]) for r in result.runs] == [("he_normal", 0), ("he_normal", 1),
                                                             ("small_random", 0), ("small_random", 1)]
    table = result.table()
    assert "he_normal" in table and "small_random" in table and "verdict at init" in table
    # small_random (0.01 N(0,1)) shrinks signal and gradient by 0.01·√16 per layer: every weight
    # gradient is orders of magnitude below he's, and diagnose calls it vanishing
    by_init = {r["init"]: r for r in result.runs if r["seed"] == 0}
    assert max(by_init["small_random"]["at_init"]["grad_norm"]) < 0.05 * min(by_init["he_normal"]["at_init"]["grad_norm"])
    assert by_init["small_random"]["at_init"]["verdict"] == "vanishing"
    paths = result.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["activations_at_init.png", "grad_norms_at_init.png", "history.csv", "layers.csv",
                     "loss_curves.png", "results.json", "summary.csv"]
    assert len(paths) == 7
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["runs"]) == 4 and saved["config"]["inits"] == ["he_normal", "small_random"]
    assert saved["runs"][0]["history"][-1]["loss"] == pytest.approx(result.runs[0]["final_loss"])
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [row["init"] for row in summary] == ["he_normal", "he_normal", "small_random", "small_random"]
    assert float(summary[0]["final_loss"]) == pytest.approx(result.runs[0]["final_loss"])
    with open(tmp_path / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 4 * 2
    with open(tmp_path / "layers.csv") as f:
        assert len(list(csv.DictReader(f))) == 4 * 3


def test_compare_rejects_bad_arguments(small_data):
    with pytest.raises(ValueError, match="not a known initializer; valid:.*he_normal"):
        experiments.compare(small_data, inits=["he_normall"], progress=False)
    with pytest.raises(ValueError, match="activation"):
        experiments.compare(small_data, inits=["he_normal"], activation="relu6", progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        experiments.compare(small_data, inits=["he_normal"], optimizer="lbfgs", progress=False)
    with pytest.raises(ValueError, match="depth must be an int >= 0"):
        experiments.compare(small_data, inits=["he_normal"], depth=-1, progress=False)
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        experiments.compare(small_data, inits=["he_normal"], workers=0, progress=False)
    with pytest.raises(ValueError, match="neither a built-in data set"):
        experiments.compare("no-such-data", progress=False)


def _grid(data):
    return [RunSpec(init=init, seed=seed, **TINY) for init in ("he_normal", "xavier_normal") for seed in (0, 1)]


def test_data_unpickled_from_a_misaligned_buffer_trains_as_the_original(small_data):
    import pickle
    buffers = []
    payload = pickle.dumps(small_data, protocol=5, buffer_callback=buffers.append)
    shifted = []
    for buffer in buffers:   # each out-of-band buffer at an odd address, as Dask may deliver it
        raw = bytearray(len(buffer.raw()) + 1)
        raw[1:] = buffer.raw()
        shifted.append(memoryview(raw)[1:])
    data = pickle.loads(payload, buffers=shifted)
    assert not data.X_train.flags.aligned       # the Network copies it to aligned memory itself
    assert np.array_equal(data.X_train, small_data.X_train) and np.array_equal(data.y_val, small_data.y_val)
    run = experiments.run_one(RunSpec(init="he_normal", **dict(TINY, epochs=1)), data)
    assert run["history"][0]["loss"] == experiments.run_one(
        RunSpec(init="he_normal", **dict(TINY, epochs=1)), small_data)["history"][0]["loss"]


def test_process_workers_equal_serial(small_data):
    specs = _grid(small_data)
    serial = experiments.run_grid(specs, small_data, progress=False)
    parallel = experiments.run_grid(specs, small_data, workers=2, progress=False)
    assert [_strip_times(r) for r in parallel] == [_strip_times(r) for r in serial]
    assert {r["spec"]["threads"] for r in parallel} == {1}      # small networks run on one thread


def test_thread_choice_per_task(small_data):
    small = RunSpec(init="he_normal", width=16, batch_size=32)
    large = RunSpec(init="he_normal", width=1024, batch_size=256)
    fixed = RunSpec(init="he_normal", threads=3)
    chosen = grid_module._threads_per_task([small, large, fixed], small_data, workers=1)
    assert [spec.threads for spec in chosen] == [1, grid_module._cpu_count(), 3]
    before = il.get_num_threads()
    experiments.run_grid([RunSpec(init="he_normal", **TINY)], small_data, progress=False)
    assert il.get_num_threads() == before   # the grid leaves the caller's thread count as it was


def test_dask_local_cluster_equals_serial(small_data):
    pytest.importorskip("dask.distributed")
    specs = _grid(small_data)
    serial = experiments.run_grid(specs, small_data, progress=False)
    distributed = experiments.run_grid(specs, small_data, scheduler="local", workers=2, progress=False)
    assert [_strip_times(r) for r in distributed] == [_strip_times(r) for r in serial]


# ---------------------------------------------------------------- presets (reduced size)

def _claims(name):
    result = experiments.run_preset(name, reduced=True, progress=False)
    return result, {c.claim: c for c in result.claims}


@pytest.mark.preset
def test_he2015_xavier_stalls_at_depth_30_and_he_trains():
    result, claims = _claims("he2015")
    deep_x = _one(result.runs, label="30 layers", init="xavier_normal")
    deep_h = _one(result.runs, label="30 layers", init="he_normal")
    assert all(abs(loss - math.log(10)) < 0.05 for loss in _losses(deep_x))
    assert deep_h["final_loss"] < 0.75 * math.log(10)
    assert deep_x["at_init"]["verdict"] == "vanishing" and deep_h["at_init"]["verdict"] != "vanishing"
    # at this size (10 epochs, width 32) the 22-layer Xavier net has not yet left the plateau, so the
    # 22-layer claim ("both train") is checked at the default size only (docs/results.md)
    stall, _, cause = result.claims
    assert stall.holds and cause.holds, result.claims_table()


@pytest.mark.preset
def test_glorot2010_claims_hold_at_reduced_size():
    result, claims = _claims("glorot2010")
    std_t = _one(result.runs, label="tanh", init="torch_default")
    norm_t = _one(result.runs, label="tanh", init="xavier_uniform")
    # activation std shrinks layer by layer under U(±1/√n) (variance factor ~1/3 per tanh layer)
    act = std_t["at_init"]["act_std"][:5]
    assert all(b < a for a, b in zip(act, act[1:]))
    assert norm_t["at_init"]["act_std"][4] > 2 * std_t["at_init"]["act_std"][4]
    assert all(c.holds for c in result.claims), result.claims_table()


@pytest.mark.preset
def test_saxe2013_orthogonal_flat_gaussian_grows():
    result, claims = _claims("saxe2013")
    assert all(c.holds for c in result.claims), result.claims_table()


@pytest.mark.preset
def test_lsuv_preset_claims_hold():
    result, claims = _claims("lsuv")
    assert all(c.holds for c in result.claims), result.claims_table()


@pytest.fixture(scope="module")
def lessons_result():
    return experiments.run_preset("lessons", reduced=True, progress=False)


@pytest.mark.preset
def test_lessons_claims_hold_at_reduced_size_and_say_why(lessons_result, tmp_path):
    pytest.importorskip("matplotlib")
    result = lessons_result
    assert len(result.claims) == 10
    assert all(c.holds for c in result.claims), result.claims_table()
    runs = result.runs
    assert {r["data"] for r in runs} == {"digits", "blobs"}
    # (a) constant init: every unit of a hidden layer is bitwise a copy of the first after training,
    # and the net computes exactly what its one-unit collapse computes; random init separates units
    for act in ("tanh", "relu"):
        for init in ("zeros", "constant(value=0.05)"):
            run = _one(runs, label=f"a {act}", init=init)
            assert run["unit_spread"] == [0.0, 0.0, 0.0]
            assert run["one_unit_val_accuracy"] == pytest.approx(run["final_val_accuracy"], abs=0.005)
            assert run["final_val_accuracy"] < 0.35
            if "symmetric" in VERDICTS:
                assert run["at_init"]["verdict"] == "symmetric"
        good = _one(runs, label=f"a {act}", init={"tanh": "xavier_normal", "relu": "he_normal"}[act])
        assert min(good["unit_spread"]) > 0.1 and good["one_unit_val_accuracy"] is None
        assert good["final_val_accuracy"] > 0.85
    # (b) small random init: the loss never leaves ln(10)
    assert all(abs(loss - math.log(10)) < 0.01 for loss in _losses(_one(runs, label="b relu deep",
                                                                         init="small_random")))
    # (c), (d): N(0, 1) relu diverges; the same run with clip_norm=1 stays finite and falls
    exploding = _one(runs, label="c relu")
    clipped = _one(runs, label="d relu clipped")
    assert exploding["diverged"] and exploding["at_init"]["loss"] > 1000
    assert not clipped["diverged"] and clipped["spec"]["clip_norm"] == 1.0
    assert _losses(clipped)[-1] < 0.05 * clipped["at_init"]["loss"]
    # (g): the regularized runs have a smaller train/validation gap than the plain one
    gap = {r["label"]: r["final_val_loss"] - r["final_train_eval"]["loss"] for r in runs if r["label"].startswith("g ")}
    assert gap["g L2 (weight_decay=0.03)"] < gap["g none"] and gap["g dropout 0.5"] < gap["g none"]
    # one figure per lesson group, small files
    paths = result.save(tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["lessons_exploding.png", "lessons_regularization.png", "lessons_symmetry.png",
                    "lessons_vanishing.png"]
    assert all(p.stat().st_size < 200_000 for p in tmp_path.glob("*.png")) and len(paths) == 8
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["config"]["data"]) == {"digits", "blobs"}


@pytest.mark.preset
def test_a_claim_that_is_wrong_does_not_hold(lessons_result):
    """The checks can fail: feed the lessons' checker runs where the constant init's units differ,
    the small init trains, clipping did not help and there is no gap to narrow."""
    from initlab.experiments.presets import lessons
    result = lessons_result
    runs = json.loads(json.dumps(_json_safe(result.runs)))
    _one(runs, label="a tanh", init="zeros")["unit_spread"][1] = 1e-7
    _one(runs, label="b relu deep", init="small_random")["history"][-1]["loss"] = 1.0
    clipped = _one(runs, label="d relu clipped")
    clipped["history"][-1]["loss"] = clipped["at_init"]["loss"]
    plain = _one(runs, label="g none")
    plain["final_val_loss"] = plain["final_train_eval"]["loss"]   # no gap left to narrow
    claims = {c.claim[:3] + str(i): c.holds for i, c in enumerate(lessons._lessons_check(runs, result.config))}
    assert list(claims.values()) == [False, True, True, False, True, True, False, True, True, False]


def test_run_one_passes_the_training_options_to_fit(small_data):
    base = RunSpec(init="he_normal", **TINY)
    plain = experiments.run_one(base, small_data)
    for options in (dict(weight_decay=0.1), dict(dropout=0.5), dict(clip_norm=0.01), dict(clip_value=1e-4),
                    dict(bias_init="normal(std=0.5)")):
        changed = experiments.run_one(replace(base, **options), small_data)
        assert changed["history"][-1]["loss"] != plain["history"][-1]["loss"], options
    # the same options given to Network/fit directly give the same numbers
    spec = replace(base, weight_decay=0.1, dropout=0.5, clip_norm=0.5, bias_init="uniform")
    run = experiments.run_one(spec, small_data)
    net = il.Network(run["widths"], activation="relu", output="softmax", init="he_normal", bias_init="uniform",
                     seed=0, dropout=0.5)
    report = net.fit(small_data.X_train, small_data.y_train, epochs=2, batch_size=32, lr=0.01, momentum=0.9,
                     weight_decay=0.1, clip_norm=0.5, validation_data=(small_data.X_val, small_data.y_val),
                     stats_every=0, progress=False)
    assert [h["loss"] for h in report.history] == [h["loss"] for h in run["history"]]
    assert run["final_train_eval"]["loss"] == pytest.approx(net.evaluate(small_data.X_train, small_data.y_train)["loss"])
    for bad in (dict(dropout=1.0), dict(weight_decay=-1.0), dict(clip_norm=0.0), dict(clip_value=float("nan"))):
        with pytest.raises(ValueError, match=list(bad)[0]):
            experiments.run_one(replace(base, **bad), small_data)


def test_lr_schedule_reaches_fit_when_fit_takes_it(small_data):
    import inspect
    if "lr_schedule" not in inspect.signature(il.Network.fit).parameters:
        pytest.skip("Network.fit has no lr_schedule yet")
    base = RunSpec(init="he_normal", **TINY)
    plain = experiments.run_one(base, small_data)
    stepped = experiments.run_one(replace(base, lr_schedule=("step", {"step_size": 1, "gamma": 0.0})), small_data)
    assert stepped["history"][0]["loss"] == plain["history"][0]["loss"]
    assert stepped["history"][1]["loss"] != plain["history"][1]["loss"]


def test_unit_spread_and_the_one_unit_collapse():
    net = il.Network([5, 4, 3, 2], activation="tanh", init="constant(value=0.3)", seed=0)
    assert runs_module.unit_spread(net) == [0.0, 0.0]
    small = runs_module.collapse_to_one_unit(net)
    assert small.widths == [5, 1, 1, 2]
    X = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    np.testing.assert_allclose(small.forward(X), net.forward(X), rtol=1e-5)
    net.layers[1].W[2, 0] += 1.0          # one unit's outgoing weight differs: no longer one unit
    assert runs_module.unit_spread(net)[0] == pytest.approx(1.0) and runs_module.collapse_to_one_unit(net) is None


def test_unknown_preset():
    with pytest.raises(ValueError, match="valid: he2015, glorot2010, saxe2013, lsuv, lessons"):
        experiments.run_preset("he2016")
