"""Sweeps that lose nothing: runs recorded as they finish, --resume, Ctrl-C, torn files, Dask
workers killed mid-sweep; and the schoenholz2017 preset at its reduced size."""
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import initlab as il
from initlab import experiments
from initlab.experiments import RunSpec
from initlab.experiments import grid as grid_module
from initlab.experiments.record import RESULTS_FILE, SweepInterrupted

from test_experiments import TINY, _strip_times  # noqa: F401  (the same tiny runs and comparison)

# the tree that holds the initlab under test (an installed one in CI, the sanitizer build's copy
# under .ci/sanitize), so a child process imports the same package
PYTHON_DIR = os.path.dirname(os.path.dirname(il.__file__))


@pytest.fixture(scope="module")
def small_data():
    return experiments.prepare_data("digits", max_samples=300, seed=0)


def _compare(data, out=None, resume=False, **kwargs):
    args = dict(inits=["he_normal", "xavier_normal", "lecun_normal"], seeds=[0, 1], progress=False, **TINY)
    args.update(kwargs)
    return experiments.compare(data, out=out, resume=resume, **args)


def _same(a, b):
    assert [_strip_times(r) for r in a.runs] == [_strip_times(r) for r in b.runs]


def _records(path):
    with open(os.path.join(path, RESULTS_FILE)) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def uninterrupted(small_data):
    return _compare(small_data)


def test_each_run_recorded_and_resume_skips_them(small_data, uninterrupted, tmp_path, monkeypatch):
    recorded = _compare(small_data, out=tmp_path)
    _same(recorded, uninterrupted)
    lines = _records(tmp_path)
    assert lines[0]["format"] == "initlab.sweep" and lines[0]["config"]["depth"] == TINY["depth"]
    assert len(lines) == 1 + 6
    calls = []
    monkeypatch.setattr(grid_module, "run_one", lambda *a, **k: calls.append(a) or pytest.fail("ran again"))
    resumed = _compare(small_data, out=tmp_path, resume=True)
    assert calls == []
    _same(resumed, uninterrupted)


def test_interrupted_sweep_resumes_to_the_uninterrupted_result(small_data, uninterrupted, tmp_path, monkeypatch):
    real = grid_module.run_one
    count = {"n": 0}

    def stop_at_the_fourth(spec, data, **kwargs):
        count["n"] += 1
        if count["n"] == 4:
            raise KeyboardInterrupt
        return real(spec, data, **kwargs)

    monkeypatch.setattr(grid_module, "run_one", stop_at_the_fourth)
    with pytest.raises(SweepInterrupted) as stop:
        _compare(small_data, out=tmp_path)
    assert (stop.value.done, stop.value.total) == (3, 6)
    assert len(_records(tmp_path)) == 1 + 3
    monkeypatch.setattr(grid_module, "run_one", real)
    ran = []
    monkeypatch.setattr(grid_module, "run_one", lambda spec, data, **k: ran.append(spec) or real(spec, data, **k))
    resumed = _compare(small_data, out=tmp_path, resume=True)
    assert len(ran) == 3
    _same(resumed, uninterrupted)
    assert len(_records(tmp_path)) == 1 + 6


def test_torn_last_record_is_dropped_with_a_warning(small_data, uninterrupted, tmp_path):
    _compare(small_data, out=tmp_path)
    path = os.path.join(tmp_path, RESULTS_FILE)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:       # a kill in the middle of writing the last run
        f.truncate(size - 500)
    with pytest.warns(RuntimeWarning, match="partial record"):
        resumed = _compare(small_data, out=tmp_path, resume=True)
    _same(resumed, uninterrupted)
    assert len(_records(tmp_path)) == 1 + 6     # every line whole again


def test_resume_with_other_settings_names_them(small_data, tmp_path):
    _compare(small_data, out=tmp_path, inits=["he_normal"], seeds=[0])
    with pytest.raises(ValueError, match=r"different sweep configuration: depth is 2 there and 3 now; "
                                         r"epochs is 2 there and 1 now"):
        _compare(small_data, out=tmp_path, resume=True, inits=["he_normal"], seeds=[0],
                 **dict(TINY, depth=3, epochs=1))
    with pytest.raises(ValueError, match="resume=True needs out="):
        _compare(small_data, resume=True)


@pytest.mark.parametrize("workers", [None, 2])
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, workers):
    out = str(tmp_path / "sweep")
    command = [sys.executable, "-m", "initlab", "compare", "--inits", "he_normal,xavier_normal,lecun_normal",
               "--seeds", "0-5", "--depth", "4", "--width", "64", "--epochs", "8", "--max-samples", "600",
               "--out", out, "--no-progress"] + (["--workers", str(workers)] if workers else [])
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = os.path.join(out, RESULTS_FILE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:       # wait for the first finished run
        if os.path.exists(path) and len(open(path).readlines()) >= 2:
            break
        time.sleep(0.02)
    # 18 runs of 8 epochs: far more than the interrupt needs, so the sweep is still running when
    # SIGINT arrives even on a loaded machine (with 12 short runs it once finished first: exit 0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr and "--resume" in stderr and "runs are recorded in" in stderr
    kept = len(_records(out)) - 1
    assert 1 <= kept < 18
    done = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert len(_records(out)) == 1 + 18
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["runs"]) == 18


def test_resume_needs_out(capsys):
    from initlab.cli import main
    assert main(["compare", "--resume"]) == 1
    assert "--resume needs --out" in capsys.readouterr().err


# ---------------------------------------------------------------- Dask

def test_dask_worker_killed_mid_sweep_loses_no_run(small_data, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    specs = [RunSpec(init=init, seed=seed, **dict(TINY, epochs=12, width=32))
             for init in ("he_normal", "xavier_normal") for seed in (0, 1, 2)]
    serial = experiments.run_grid(specs, small_data, progress=False)
    path = os.path.join(tmp_path, RESULTS_FILE)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        pids = [nanny.process.pid for nanny in cluster.workers.values()]
        killed = []

        def kill_a_worker_once_a_run_is_recorded():
            # one run recorded, five left on two one-thread workers: both are busy
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if os.path.exists(path) and len(open(path).readlines()) >= 2:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_worker_once_a_run_is_recorded)
        killer.start()
        log = experiments.record.RunLog(tmp_path, {"sweep": "kill test"})
        runs = experiments.run_grid(specs, small_data, scheduler=cluster.scheduler_address, progress=False,
                                    log=log)
        killer.join()
    assert killed, "no run was recorded while the sweep ran"
    assert len(_records(tmp_path)) == 1 + len(specs)
    assert [_strip_times(r) for r in runs] == [_strip_times(r) for r in serial]


def test_dask_progress_dashboard_and_failures(small_data, capsys):
    pytest.importorskip("dask.distributed")
    specs = [RunSpec(init="he_normal", **TINY), RunSpec(init="he_normal", optimizer="nope", **TINY)]
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed on Dask: .*optimizer"):
        experiments.run_grid(specs, small_data, scheduler="local", workers=1, progress=True)
    err = capsys.readouterr().err
    assert "Dask LocalCluster: 1 worker processes at tcp://127.0.0.1:" in err
    assert "Dask dashboard: " in err
    assert "2/2" in err and "failures 1" in err, err


# ---------------------------------------------------------------- schoenholz2017 (reduced size)

@pytest.mark.preset
def test_schoenholz2017_claims_hold_at_reduced_size():
    from initlab.experiments.presets import schoenholz2017 as preset
    cpu = time.process_time()
    result = experiments.run_preset("schoenholz2017", reduced=True, progress=False)
    cpu = time.process_time() - cpu
    assert cpu < 120, f"reduced schoenholz2017 took {cpu:.0f} s of CPU"
    config = result.config
    assert len(result.runs) == len(config["sigma_w2"]) * len(config["depths"])
    # the theory the claims compare with
    assert config["critical_sigma_w2"] == pytest.approx(1.7610, abs=1e-3)
    inside = [w for w in config["sigma_w2"] if min(config["depths"]) <= 6 * config["xi_c"][f"{w:g}"]
              <= max(config["depths"])]
    assert len(inside) >= len(config["sigma_w2"]) - 1        # 6 xi_c inside the depth range for most
    deepest = preset.deepest_trainable(result.runs, config)
    for w in inside:
        xi = config["xi_c"][f"{w:g}"]
        assert deepest[w] is not None and 3 * xi <= deepest[w] <= 12 * xi
    boundary, critical = result.claims
    assert boundary.holds and critical.holds, result.claims_table()
    # the shallowest nets train everywhere; the deepest fail far from the critical line
    accuracy = preset.accuracy_grid(result.runs, config)
    assert all(row[0] > 0.8 for row in accuracy)
    assert accuracy[0][-1] < 0.2 and accuracy[-1][-1] < 0.2
    assert all(math.isfinite(r["final_loss"]) for r in result.runs if not r["diverged"])
