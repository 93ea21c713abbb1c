"""Files: `Network.save` is atomic under SIGKILL, and loading never executes code from the file.

The kill test runs a child process that saves a large network again and again (each version marks
itself in W0[0, 0]) and SIGKILLs it at random moments, most of them in the middle of a save. After
every kill the target path must load (the loader verifies keys, shapes and a SHA-256 checksum of
every array, so a partial file cannot pass) and hold one complete version; leftovers of the killed
write are only the hidden temporary files `.initlab-*.npz.tmp`, never the target name.
"""
from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import initlab as il

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(il.__file__))  # the tree that holds this initlab

WIDTHS = [1024, 1024, 1024, 10]  # 2.1 million float32 weights: an 8 MB file

CHILD = textwrap.dedent("""
    import sys
    import initlab as il

    path = sys.argv[1]
    net = il.Network({widths}, seed=5)
    print("ready", flush=True)
    version = 0
    while True:
        version += 1
        net.layers[0].W[0, 0] = version
        print("saving", version, flush=True)
        net.save(path)
        print("saved", version, flush=True)
""")


def _base_net():
    return il.Network(WIDTHS, seed=5)


def test_sigkill_during_save_leaves_old_or_new_file(tmp_path):
    path = tmp_path / "net.npz"
    base = _base_net()
    base.layers[0].W[0, 0] = 0
    t0 = time.perf_counter()
    base.save(path)  # version 0: the "old" file before the first child starts
    save_seconds = time.perf_counter() - t0
    reference = base.get_weights()

    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = CHILD.format(widths=WIDTHS)
    rng = random.Random(0)
    # Kill right after a save has begun, at a random point of its expected duration; on a loaded
    # machine a kill can still miss the save, so rounds go on until enough of them hit one.
    wanted, max_rounds, rounds, killed_mid_save, seen_versions = 3, 30, 0, 0, set()
    while killed_mid_save < wanted and rounds < max_rounds:
        round_, rounds = rounds, rounds + 1
        child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        try:
            assert child.stdout.readline().strip() == "ready"
            if round_ % 2:  # let a first version replace the file, then kill in a later save
                while child.stdout.readline().strip() != "saved 1":
                    pass
            last_line = ""
            while not last_line.startswith("saving"):
                last_line = child.stdout.readline().strip()
            time.sleep(rng.uniform(0.0, save_seconds))
        finally:
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL
        lines = [last_line] + out.strip().splitlines()
        killed_mid_save += lines[-1].startswith("saving")

        # The target holds a complete file: it loads, checksum and all, and is one whole version.
        loaded = il.Network.load(path)
        weights = loaded.get_weights()
        version = int(weights[0][0, 0])
        seen_versions.add(version)
        weights[0][0, 0] = 0
        for got, want in zip(weights, reference):
            np.testing.assert_array_equal(got, want)
        # Whatever the kill left behind is a hidden temporary file, never the target's name.
        for name in os.listdir(tmp_path):
            assert name == "net.npz" or (name.startswith(".initlab-") and name.endswith(".npz.tmp")), name
    # The kills did land inside save (the loop spends most of its time there).
    assert killed_mid_save >= wanted, f"only {killed_mid_save} of {rounds} kills hit a save"
    assert len(seen_versions - {0}) >= 1  # the file was replaced, not just left at version 0


def test_failed_save_removes_its_temporary_file(tmp_path, monkeypatch):
    net = il.Network([3, 4, 2], seed=0)
    path = tmp_path / "net.npz"
    net.save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert sorted(os.listdir(tmp_path)) == ["net.npz"]
    assert path.read_bytes() == before


class _Payload:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _npz_with_pickle(path, marker, good: dict):
    arrays = dict(good)
    arrays["W0"] = np.array([_Payload(marker)], dtype=object)
    np.savez(path, **arrays)  # object arrays are pickled inside the .npy member


def test_loading_never_executes_code(tmp_path):
    marker = str(tmp_path / "marker")
    net = il.Network([3, 4, 2], seed=0)
    good_path = tmp_path / "good.npz"
    net.save(good_path)
    with np.load(good_path) as f:
        good = {k: f[k] for k in f.files}

    evil = tmp_path / "evil.npz"
    _npz_with_pickle(evil, marker, good)
    with pytest.raises(ValueError, match="evil.npz"):
        il.Network.load(evil)
    assert not os.path.exists(marker)

    data_path = tmp_path / "data.npz"
    np.savez(data_path, X=np.array([_Payload(marker)], dtype=object), y=np.array([0]))
    with pytest.raises(ValueError):
        il.datasets.load_npz(data_path)
    assert not os.path.exists(marker)

    # A bare pickle renamed .npz, and a .npy holding a pickled object array.
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError):
        il.Network.load(raw)
    with pytest.raises(ValueError):
        il.datasets.load_npz(raw)
    npy = tmp_path / "single.npy"
    np.save(npy, np.array([_Payload(marker)], dtype=object))
    with pytest.raises(ValueError):
        il.Network.load(npy)
    assert not os.path.exists(marker)

    # The payload is live: numpy with allow_pickle=True does run it (so the checks above can fail).
    with np.load(evil, allow_pickle=True) as f:
        f["W0"]
    assert open(marker).read() == "code ran"


def test_modified_file_is_rejected(tmp_path):
    net = il.Network([3, 4, 2], seed=0)
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["W1"] = arrays["W1"] + 1  # a consistent file whose weights changed after saving
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        il.Network.load(path)


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    import stat
    old = os.umask(0o022)
    try:
        net = il.Network([3, 4, 2], seed=0)
        X = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
        report = net.fit(X, np.arange(16) % 2, epochs=1, progress=False)
        paths = [net.save(tmp_path / "m.npz"), report.to_json(tmp_path / "r.json"),
                 report.to_csv(tmp_path / "r.csv")]
        for path in paths:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
        assert sorted(os.listdir(tmp_path)) == ["m.npz", "r.csv", "r.json"]  # no temp files left
    finally:
        os.umask(old)
