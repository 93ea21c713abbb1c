"""The `initlab` command line, end to end on tiny settings."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import initlab as il
from initlab import cli

TINY_COMPARE = ["compare", "--depth", "2", "--width", "16", "--epochs", "2", "--max-samples", "300",
                "--inits", "he_normal,xavier_normal", "--no-progress"]


def _run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _python_m(*argv, cwd=None):
    """`python -m initlab ...` in a fresh interpreter (what a user types)."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(il.__file__))
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "initlab", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [[], ["compare"], ["diagnose"], ["train"], ["bench"], ["info"]])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(command + ["-h"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: initlab")
    if command == ["compare"]:
        for option in ("--data", "--depth", "--width", "--activation", "--inits", "--epochs", "--batch-size",
                       "--optimizer", "--lr", "--seeds", "--target-accuracy", "--threads", "--workers",
                       "--scheduler", "--preset", "--out"):
            assert option in out
        assert "he2015" in out and "saxe2013" in out


def test_compare_writes_table_json_csv_and_figures(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = _run(capsys, *TINY_COMPARE, "--seeds", "0,1", "--out", str(tmp_path))
    assert status == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("init"))
    for word in ("train loss", "val acc", "epochs to 95%", "|dW| first/last", "verdict at init", "time s"):
        assert word in lines[header]
    rows = lines[header + 2:header + 6]
    assert [row.split()[:2] for row in rows] == [["he_normal", "0"], ["he_normal", "1"],
                                                 ["xavier_normal", "0"], ["xavier_normal", "1"]]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["depth"] == 2 and results["config"]["seeds"] == [0, 1]
    assert len(results["runs"]) == 4 and all(len(r["history"]) == 2 for r in results["runs"])
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    # the table prints the same final losses as the CSV holds
    for row, line in zip(summary, rows):
        assert float(line.split()[2]) == pytest.approx(float(row["final_loss"]), rel=2e-3, abs=2e-3)
    for png in ("loss_curves.png", "grad_norms_at_init.png", "activations_at_init.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_compare_on_a_csv_file_and_a_preset_conflict(capsys, tmp_path):
    X, y = il.datasets.make_blobs(120, 3, seed=0, features=4)
    path = tmp_path / "blobs.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.6g")
    status, out, err = _run(capsys, "compare", "--data", str(path), "--inits", "lecun_normal", "--depth", "1",
                            "--width", "8", "--epochs", "3", "--no-progress", "--target-accuracy", "0.5")
    assert status == 0, err
    assert "96 train / 24 validation samples, 4 features, 3 classes" in out
    status, out, err = _run(capsys, "compare", "--preset", "he2015", "--depth", "3")
    assert status == 1 and err.strip() == "initlab compare: error: --preset he2015 fixes its data, network " \
                                          "and training; drop --depth"


def test_compare_without_hidden_layers_skips_the_histograms(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = _run(capsys, "compare", "--depth", "0", "--epochs", "1", "--inits", "zeros,he_normal",
                            "--no-progress", "--out", str(tmp_path))
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["grad_norms_at_init.png", "loss_curves.png"]
    # all-zero weights in a single softmax layer: loss exactly ln(10) at init
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert runs[0]["at_init"]["loss"] == pytest.approx(np.log(10), rel=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["compare", "--inits", "he_norml", "--no-progress"], "'he_norml' is not a known initializer; valid:"),
    (["compare", "--data", "missing.npz", "--no-progress"], "neither a built-in data set"),
    (["compare", "--activation", "swish", "--epochs", "1", "--no-progress"], "activation='swish' is not valid"),
    (["diagnose", "--layers", "8"], "at least an input and an output width"),
    (["train", "--data", "moons", "--optimizer", "lbfgs", "--epochs", "1"], "optimizer='lbfgs' is not valid"),
    (["bench", "--only", "nothing"], "unknown benchmark(s) nothing"),
])
def test_errors_are_one_line_and_exit_1(capsys, argv, message):
    status, out, err = _run(capsys, *argv)
    assert status == 1
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert err.startswith(f"initlab {argv[0]}: error: ")


def test_unexpected_failures_are_one_line_too(capsys, monkeypatch):
    def broken(args):
        raise KeyError("boom")
    monkeypatch.setattr(cli, "cmd_info", broken)
    status, out, err = _run(capsys, "info")
    assert status == 1 and err.strip() == ("initlab info: internal error: KeyError: 'boom' "
                                           "(set INITLAB_DEBUG=1 to see the traceback)")


def test_bad_option_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["compare", "--epochs", "-3"])
    assert exit_info.value.code == 2
    assert "expected an int >= 0" in capsys.readouterr().err


def test_python_m_runs_the_same_program_and_errors_have_no_traceback(tmp_path):
    done = _python_m("info")
    assert done.returncode == 0, done.stderr
    assert "version" in done.stdout and il.__version__ in done.stdout and "presets: he2015" in done.stdout
    failed = _python_m("diagnose", "--model", str(tmp_path / "none.npz"))
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith("initlab diagnose: error:")


def test_info_json(capsys):
    status, out, _ = _run(capsys, "info", "--json")
    assert status == 0
    info = json.loads(out)
    assert info["info"]["version"] == il.__version__
    assert "he_normal" in info["initializers"] and "digits" in info["datasets"]


def test_diagnose_noise_data_and_verdicts(capsys):
    status, out, _ = _run(capsys, "diagnose", "--depth", "20", "--width", "64", "--init", "xavier_normal")
    assert status == 0 and "verdict: vanishing" in out and "N(0, 1) noise" in out
    status, out, _ = _run(capsys, "diagnose", "--depth", "20", "--width", "64", "--init", "he_normal",
                          "--data", "digits")
    assert status == 0 and "verdict: healthy" in out and "rows of digits" in out
    status, out, _ = _run(capsys, "diagnose", "--layers", "64,32,10", "--activation", "tanh", "--json")
    assert status == 0 and json.loads(out)["verdict"] in ("healthy", "saturated", "vanishing", "exploding", "dead")


def test_train_saves_a_model_that_loads_and_predicts_the_same(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = _run(capsys, "train", "--data", "digits", "--layers", "32", "--epochs", "3",
                            "--init", "he_uniform", "--out", str(tmp_path))
    assert status == 0, err
    assert "validation: loss" in out
    for name in ("model.npz", "report.json", "history.csv", "layer_stats.csv", "report.png"):
        assert (tmp_path / name).exists(), name
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["history"]) == 3
    net = il.Network.load(tmp_path / "model.npz")
    assert net.widths == [64, 32, 10]
    # the reported validation accuracy is the loaded model's accuracy on the same split
    from initlab.experiments import prepare_data
    data = prepare_data("digits")
    accuracy = float(out.split("accuracy ")[-1].split("%")[0]) / 100
    assert net.evaluate(data.X_val, data.y_val)["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    # diagnose accepts the saved model
    status, out, _ = _run(capsys, "diagnose", "--model", str(tmp_path / "model.npz"), "--data", "digits")
    assert status == 0 and "verdict:" in out


def test_bench_runs_a_module_and_names_an_unavailable_one(capsys, tmp_path, monkeypatch):
    pytest.importorskip("initlab.bench.init_fill")
    monkeypatch.setattr(cli, "BENCH_MODULES", ("init_fill", "no_such_module"))
    out_file = tmp_path / "bench.json"
    status, out, err = _run(capsys, "bench", "--threads", "1", "--quick", "--out", str(out_file))
    assert status == 0, err
    assert "== initlab.bench.init_fill (threads 1)" in out and "| scheme |" in out
    assert "initlab.bench.no_such_module: unavailable (No module named" in err
    rows = json.loads(out_file.read_text())
    assert list(rows) == ["init_fill"] and rows["init_fill"] and all(r["threads"] == 1 for r in rows["init_fill"])
    status, out, err = _run(capsys, "bench", "--only", "no_such_module")
    assert status == 1 and "no benchmark module is available (no_such_module)" in err
