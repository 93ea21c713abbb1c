"""The `initlab` command line, end to end on tiny settings."""
import argparse
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import initlab as il
from initlab import cli
from initlab.inspect.diagnose import VERDICTS
from initlab.nn.schedules import parse_schedule

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
        for option in ("--data", "--depth", "--width", "--hidden", "--activation", "--inits", "--epochs",
                       "--batch-size", "--optimizer", "--lr", "--momentum", "--weight-decay", "--dropout",
                       "--clip-norm", "--clip-value", "--bias-init", "--lr-schedule", "--seeds",
                       "--target-accuracy", "--threads", "--workers", "--scheduler", "--preset", "--out"):
            assert option in out
        assert "he2015" in out and "saxe2013" in out and "lessons" in out
    if command == ["train"]:
        for option in ("--hidden", "--optimizer", "--lr", "--momentum", "--weight-decay", "--dropout",
                       "--clip-norm", "--clip-value", "--batch-size", "--bias-init", "--lr-schedule"):
            assert option in out
    if command in (["compare"], ["diagnose"], ["train"]):
        assert "--hidden" in out and "--layers" not in out


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


def test_compare_without_hidden_layers_skips_the_histograms(tmp_path):
    pytest.importorskip("matplotlib")
    # the command line wants at least one hidden layer; the Python API still takes depth=0
    from initlab import experiments
    result = experiments.compare("digits", depth=0, epochs=1, inits=["zeros", "he_normal"], progress=False)
    result.save(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["grad_norms_at_init.png", "loss_curves.png"]
    # all-zero weights in a single softmax layer: loss exactly ln(10) at init
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert runs[0]["at_init"]["loss"] == pytest.approx(np.log(10), rel=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["compare", "--inits", "he_norml", "--no-progress"], "'he_norml' is not a known initializer; valid:"),
    (["compare", "--data", "missing.npz", "--no-progress"], "neither a built-in data set"),
    (["compare", "--activation", "swish", "--epochs", "1", "--no-progress"], "activation='swish' is not valid"),
    (["diagnose", "--layers", "8"], "--layers is gone: give the hidden widths with --hidden"),
    (["train", "--layers", "64,256,10"], "--layers is gone: give the hidden widths with --hidden"),
    (["compare", "--layers", "64", "--no-progress"], "--layers is gone: give the hidden widths with --hidden"),
    (["train", "--hidden", "32", "--depth", "2"], "give either --hidden or --depth/--width, not both"),
    (["compare", "--inits", "he_normal,normal(sd=1)", "--no-progress"], "normal: unknown parameter 'sd'"),
    (["compare", "--preset", "lessons", "--weight-decay", "0.1"], "drop --weight-decay"),
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
    status, out, _ = _run(capsys, "diagnose", "--hidden", "32", "--activation", "tanh", "--json")
    assert status == 0 and json.loads(out)["verdict"] in VERDICTS
    assert len(json.loads(out)["layers"]) == 2


def test_train_saves_a_model_that_loads_and_predicts_the_same(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = _run(capsys, "train", "--data", "digits", "--hidden", "32", "--epochs", "3",
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


# ---------------------------------------------------------------- network shape, the same in every command

@pytest.mark.parametrize("command", [["compare", "--no-progress"], ["diagnose"], ["train"]])
def test_depth_0_is_a_usage_error_in_every_command(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(command + ["--depth", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --depth: expected an int >= 1 (hidden layers: the network needs at least one), got '0'" in err


def test_hidden_gives_the_hidden_widths_in_every_command(capsys, tmp_path):
    status, out, err = _run(capsys, "diagnose", "--hidden", "48,24", "--json")
    assert status == 0, err
    assert [row["layer"] for row in json.loads(out)["layers"]] == [0, 1, 2]
    status, out, err = _run(capsys, "diagnose", "--hidden", "48,24")
    assert status == 0 and "network [64, 48, 24, 10]" in out
    status, out, err = _run(capsys, "train", "--hidden", "24,12", "--epochs", "1", "--max-samples", "200",
                            "--out", str(tmp_path))
    assert status == 0 and "network [64, 24, 12, 10]" in out, err
    assert il.Network.load(tmp_path / "model.npz").widths == [64, 24, 12, 10]
    status, out, err = _run(capsys, "compare", "--hidden", "24,12", "--epochs", "1", "--max-samples", "200",
                            "--inits", "he_normal", "--no-progress", "--out", str(tmp_path / "c"))
    assert status == 0 and "network hidden 24,12 relu" in out, err
    assert json.loads((tmp_path / "c" / "results.json").read_text())["runs"][0]["widths"] == [64, 24, 12, 10]
    with pytest.raises(SystemExit):
        cli.main(["diagnose", "--hidden", "32,0"])
    assert "expected widths >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------- training options reach fit

def test_train_passes_every_training_option_to_fit(capsys, tmp_path):
    argv = ["train", "--data", "moons", "--hidden", "16,8", "--epochs", "3", "--seed", "2", "--optimizer", "sgd",
            "--lr", "0.05", "--momentum", "0.5", "--weight-decay", "0.01", "--dropout", "0.25", "--clip-norm", "0.5",
            "--clip-value", "0.2", "--batch-size", "16", "--bias-init", "normal(std=0.1)",
            "--init", "he_normal(mode=fan_out)", "--out", str(tmp_path)]
    status, out, err = _run(capsys, *argv)
    assert status == 0, err
    assert "weight decay 0.01, clip norm 0.5, clip value 0.2, dropout 0.25, bias init normal(std=0.1)" in out
    from initlab.experiments import prepare_data
    data = prepare_data("moons")
    net = il.Network([2, 16, 8, 2], activation="relu", init="he_normal(mode=fan_out)", bias_init="normal(std=0.1)",
                     dropout=0.25, seed=2)
    report = net.fit(data.X_train, data.y_train, epochs=3, batch_size=16, optimizer="sgd", lr=0.05, momentum=0.5,
                     weight_decay=0.01, clip_norm=0.5, clip_value=0.2, validation_data=(data.X_val, data.y_val),
                     progress=False)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [h["loss"] for h in saved["history"]] == pytest.approx([h["loss"] for h in report.history], rel=1e-12)
    loaded = il.Network.load(tmp_path / "model.npz")
    for mine, theirs in zip(loaded.layers, net.layers):
        assert np.array_equal(mine.W, theirs.W) and np.array_equal(mine.b, theirs.b)
    # each option changes the run: leaving one out gives other losses
    for drop in (("--weight-decay", "0.01"), ("--dropout", "0.25"), ("--clip-norm", "0.5"), ("--clip-value", "0.2"),
                 ("--bias-init", "normal(std=0.1)"), ("--momentum", "0.5")):
        i = argv.index(drop[0])
        status, out, err = _run(capsys, *(argv[:i] + argv[i + 2:-2]), "--out", str(tmp_path / "other"))
        assert status == 0, err
        other = json.loads((tmp_path / "other" / "report.json").read_text())
        assert other["history"][-1]["loss"] != saved["history"][-1]["loss"], drop


def test_compare_passes_the_training_options_to_every_run(capsys, tmp_path):
    status, out, err = _run(capsys, *TINY_COMPARE, "--weight-decay", "0.001", "--dropout", "0.1", "--clip-norm", "2",
                            "--clip-value", "0.5", "--bias-init", "uniform", "--batch-size", "20", "--optimizer",
                            "adam", "--lr", "0.002", "--out", str(tmp_path))
    assert status == 0, err
    results = json.loads((tmp_path / "results.json").read_text())
    for run in results["runs"]:
        spec = run["spec"]
        assert (spec["weight_decay"], spec["dropout"], spec["clip_norm"], spec["clip_value"], spec["bias_init"],
                spec["batch_size"], spec["optimizer"], spec["lr"]) == (0.001, 0.1, 2.0, 0.5, "uniform", 20, "adam", 0.002)
    assert "adam lr 0.002" in out and "dropout 0.1" in out
    from initlab.experiments import RunSpec, prepare_data, run_one
    data = prepare_data("digits", max_samples=300)
    spec = RunSpec(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in results["runs"][0]["spec"].items()})
    assert run_one(spec, data)["history"][-1]["loss"] == pytest.approx(results["runs"][0]["final_loss"], rel=1e-12)


def test_inits_with_parameters_split_outside_parentheses(capsys, tmp_path):
    status, out, err = _run(capsys, "compare", "--depth", "2", "--width", "16", "--epochs", "1", "--max-samples", "300",
                            "--inits", "zeros,normal(std=1.0),he_normal(mode=fan_out)", "--no-progress",
                            "--out", str(tmp_path))
    assert status == 0, err
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [r["init"] for r in runs] == ["zeros", "normal(std=1.0)", "he_normal(mode=fan_out)"]
    # the first layer's gradient at init is that of the network built with the same spec
    from initlab.experiments import prepare_data
    data = prepare_data("digits", max_samples=300)
    net = il.Network([64, 16, 16, 10], init="he_normal(mode=fan_out)", seed=0)
    dW, _ = net.gradients(data.X_train[:256], data.y_train[:256])[0]
    assert runs[2]["at_init"]["grad_norm"][0] == pytest.approx(float(np.linalg.norm(dW)), rel=1e-5)
    assert cli._init_list("a(x=1,y=2), b ,c(z=3)") == ["a(x=1,y=2)", "b", "c(z=3)"]


def test_lr_schedule_is_parsed_like_an_initializer(capsys):
    assert cli._lr_schedule("cosine(T_max=30)") == ("cosine", {"T_max": 30})
    assert cli._lr_schedule("step(step_size=10,gamma=0.5)") == ("step", {"step_size": 10, "gamma": 0.5})
    assert cli._lr_schedule("constant") == "constant"
    assert cli._lr_schedule("warmup(epochs=3)") == ("warmup", {"epochs": 3})
    # one parser (nn.schedules.parse_schedule), so one message per mistake, naming --lr-schedule
    for bad, message in (("cosine(Tmax=3)", "--lr-schedule 'cosine': unknown parameter 'Tmax'"),
                         ("linear", "--lr-schedule: unknown schedule 'linear'; valid: constant, step"),
                         ("step(gamma=0.5)", "--lr-schedule 'step': parameter 'step_size' is required"),
                         ("exponential(gamma=fast)", "--lr-schedule: parameter 'gamma' must be a number"),
                         ("cosine(T_max=)", "--lr-schedule: cannot read 'T_max='")):
        with pytest.raises((TypeError, ValueError)) as fit_error:
            parse_schedule(bad, "--lr-schedule")
        assert str(fit_error.value).startswith(message), (bad, str(fit_error.value))
        body = str(fit_error.value)[len("--lr-schedule"):].lstrip(": ")
        with pytest.raises(argparse.ArgumentTypeError, match="^" + re.escape(body) + "$"):
            cli._lr_schedule(bad)
        with pytest.raises(SystemExit):  # argparse names the option once, then the same message
            cli.build_parser().parse_args(["train", "--lr-schedule", bad])
        assert f"argument --lr-schedule: {body}" in capsys.readouterr().err


def test_lr_schedule_reaches_fit(capsys, tmp_path):
    import inspect
    if "lr_schedule" not in inspect.signature(il.Network.fit).parameters:
        pytest.skip("Network.fit has no lr_schedule yet")
    argv = ["train", "--data", "moons", "--hidden", "8", "--epochs", "3", "--lr", "0.1"]
    status, out, err = _run(capsys, *argv, "--lr-schedule", "step(step_size=1,gamma=0.5)", "--out", str(tmp_path))
    assert status == 0, err
    history = json.loads((tmp_path / "report.json").read_text())["history"]
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.05, 0.025])


# ---------------------------------------------------------------- seeds, verdicts

def test_several_seeds_get_a_mean_and_std_row_per_initializer(capsys, tmp_path):
    status, out, err = _run(capsys, *TINY_COMPARE, "--seeds", "0-2", "--out", str(tmp_path))
    assert status == 0, err
    assert "over the seeds (mean ± sample std):" in out
    summary = out.split("over the seeds (mean ± sample std):")[1].splitlines()
    rows = {line.split()[0]: line for line in summary[3:5]}
    results = json.loads((tmp_path / "results.json").read_text())
    for init in ("he_normal", "xavier_normal"):
        losses = [r["final_loss"] for r in results["runs"] if r["init"] == init]
        accs = [r["final_val_accuracy"] for r in results["runs"] if r["init"] == init]
        assert len(losses) == 3
        cells = rows[init].split()
        assert cells[1] == "3"
        assert float(cells[2]) == pytest.approx(np.mean(losses), abs=6e-4)
        assert float(cells[4]) == pytest.approx(np.std(losses, ddof=1), rel=2e-3, abs=6e-4)
        assert float(cells[5].rstrip("%")) == pytest.approx(100 * np.mean(accs), abs=0.06)
        assert float(cells[7].rstrip("%")) == pytest.approx(100 * np.std(accs, ddof=1), abs=0.06)
    # one seed: no summary
    status, out, err = _run(capsys, *TINY_COMPARE)
    assert status == 0 and "over the seeds" not in out


def test_the_verdict_column_shows_the_diagnosis_symmetric_included(capsys, tmp_path):
    status, out, err = _run(capsys, "compare", "--depth", "2", "--width", "16", "--epochs", "1", "--max-samples", "300",
                            "--inits", "constant(value=0.05),he_normal", "--no-progress", "--out", str(tmp_path))
    assert status == 0, err
    from initlab.experiments import prepare_data
    data = prepare_data("digits", max_samples=300)
    verdicts = []
    for init in ("constant(value=0.05)", "he_normal"):
        net = il.Network([64, 16, 16, 10], init=init, seed=0)
        verdicts.append(net.diagnose(data.X_train[:256], data.y_train[:256]).verdict)
        line = next(line for line in out.splitlines() if line.startswith(init + " "))
        assert line.split()[-2] == verdicts[-1], line
    if "symmetric" in VERDICTS:
        assert verdicts[0] == "symmetric"


# ---------------------------------------------------------------- pipes and files

def test_a_closed_pipe_ends_quietly_with_status_0():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(il.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    for argv in (["info", "--json"], ["info"], ["diagnose", "--depth", "3", "--width", "8"]):
        read_end, write_end = os.pipe()
        os.close(read_end)            # the reader has gone before the first write (`| head -0`)
        try:
            done = subprocess.run([sys.executable, "-m", "initlab", *argv], stdout=write_end,
                                  stderr=subprocess.PIPE, text=True, env=env, timeout=300)
        finally:
            os.close(write_end)
        assert done.returncode == 0 and done.stderr == "", (argv, done.stderr)
    # and through a real `head`, the case users meet
    shell = subprocess.run(f"{sys.executable} -m initlab info --json | head -3; echo status ${{PIPESTATUS[0]}}",
                           shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=300)
    assert shell.stdout.splitlines()[-1] == "status 0" and shell.stderr == ""


def test_a_file_that_is_not_a_model_says_so(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n4,5,6\n")
    status, out, err = _run(capsys, "diagnose", "--model", str(path))
    assert status == 1 and "allow_pickle" not in err
    assert err.strip() == (f"initlab diagnose: error: --model {path}: not an initlab model (a model is the .npz "
                           "file that `initlab train --out` or Network.save writes)")
    np.save(tmp_path / "array.npy", np.zeros(3))
    status, out, err = _run(capsys, "diagnose", "--model", str(tmp_path / "array.npy"))
    assert status == 1 and "not an initlab model" in err
    status, out, err = _run(capsys, "diagnose", "--model", str(tmp_path / "missing.npz"))
    assert status == 1 and "no such file" in err
    status, out, err = _run(capsys, "diagnose", "--model", str(path), "--hidden", "8")
    assert status == 1 and "--model already fixes the network; drop --hidden" in err
