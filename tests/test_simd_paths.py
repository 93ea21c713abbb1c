"""Instruction-set paths (cpp/include/initlab/isa.hpp, cpp/bindings_module.cpp).

A native build has one path, "native". A portable build (cmake -DINITLAB_NATIVE=OFF) has "baseline",
"avx2" and "avx512" and takes the best one the CPU runs; INITLAB_SIMD names another. The promises
tested here, each path run in its own interpreter (the path is chosen once, at import):
- initializers are bitwise identical on every path (API.md: reproducible on any machine);
- training is bitwise identical on any thread count within a path, and agrees across paths to
  rounding (the baseline path has no FMA, so its last bits differ);
- a function outside the avx2/avx512 namespaces contains no AVX instruction, so the baseline path
  never runs one (checked on the built module's symbols where it has them).
CI builds the portable module and runs this file against it (.ci/portable).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import initlab as il
from initlab import _core

PACKAGE_ROOT = os.path.dirname(os.path.dirname(il.__file__))
PORTABLE = _core.SIMD_PATH != "native"
KNOWN_PATHS = ("native", "baseline", "avx2", "avx512")


def run_child(code: str, simd: str | None, threads: int = 1) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, OMP_NUM_THREADS=str(threads))
    env.pop("INITLAB_SIMD", None)
    if simd is not None:
        env["INITLAB_SIMD"] = simd
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


# What a child computes on its path: hashes of initializer fills and the losses of a short fit.
CHILD = r"""
import hashlib, json
import numpy as np
import initlab as il
from initlab import _core

def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

fills = {}
for dtype in ("float32", "float64"):
    for name in ("he_normal", "he_uniform", "xavier_normal", "lecun_uniform", "truncated_normal",
                 "orthogonal", "normal", "uniform"):
        for shape in ((257, 131), (3, 5, 7, 11)):
            init = il.init.get(name)
            fills[f"{name}/{dtype}/{shape}"] = digest(init(shape, dtype=dtype, seed=12345))
fills["words"] = digest(il.random.words(1001, seed=7))

rng = np.random.default_rng(0)
X = rng.standard_normal((96, 20)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
losses = {}
for optimizer in ("sgd", "adam"):
    net = il.Network([20, 48, 48, 3], activation="tanh", seed=1)
    hist = net.fit(X, y, epochs=3, batch_size=16, lr=0.05, optimizer=optimizer)
    losses[optimizer] = [row["loss"] for row in hist.history]
    losses[optimizer + "/bits"] = digest(np.concatenate([np.ravel(p) for p in net.get_weights()]))
a = rng.standard_normal((300, 200)).astype(np.float32)
b = rng.standard_normal((200, 100)).astype(np.float32)
gemm = (a @ b).astype(np.float64)
c = np.zeros((300, 100), np.float32)
_core.gemm(a, b, c, 1.0, 0.0, False, False)
print(json.dumps({"path": _core.SIMD_PATH, "simd": il.info()["simd"], "fills": fills, "losses": losses,
                  "gemm_err": float(np.max(np.abs(c - gemm)) / np.max(np.abs(gemm)))}))
"""


def child_results(simd: str | None, threads: int = 1) -> dict:
    proc = run_child(CHILD, simd, threads)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_info_names_the_path_in_use():
    info = il.info()
    assert info["simd_path"] == _core.SIMD_PATH
    assert info["simd_path"] in KNOWN_PATHS
    assert info["simd_path"] in info["simd_paths"]
    assert set(info["simd_paths"]) <= set(KNOWN_PATHS)
    if not PORTABLE:
        assert info["simd_paths"] == ["native"]
    else:
        assert "baseline" in info["simd_paths"]
        # The default is the best path the CPU runs.
        assert info["simd_path"] == info["simd_paths"][0] or os.environ.get("INITLAB_SIMD")


def test_an_unknown_path_fails_the_import_with_the_paths_this_build_has():
    proc = run_child("import initlab", "avx1024")
    assert proc.returncode != 0
    assert "INITLAB_SIMD='avx1024' is not a path of this build" in proc.stderr
    assert ("(it has 'avx512', 'avx2', 'baseline')" in proc.stderr or "(it has 'avx2', 'baseline')" in proc.stderr
            or "(it has 'baseline')" in proc.stderr) == PORTABLE


@pytest.mark.skipif(PORTABLE, reason="a native build's message")
def test_a_native_build_refuses_a_portable_path_and_says_how_to_get_one():
    proc = run_child("import initlab", "baseline")
    assert proc.returncode != 0
    assert "INITLAB_NATIVE=OFF" in proc.stderr
    assert "'native'" in proc.stderr


@pytest.mark.skipif(not PORTABLE, reason="only a portable build has more than one path")
def test_every_path_gives_bitwise_identical_initializers_and_agreeing_training():
    runs = {path: child_results(path) for path in _core.SIMD_PATHS}
    simd_names = {"baseline": "SSE2", "avx2": "AVX2+FMA", "avx512": "AVX-512"}
    for path, run in runs.items():
        assert run["path"] == path
        assert run["simd"] == simd_names[path]
        assert run["gemm_err"] < 1e-5
    reference = runs["baseline"]
    for path, run in runs.items():
        assert run["fills"] == reference["fills"], f"{path}: an initializer differs from the baseline path"
        for optimizer in ("sgd", "adam"):
            np.testing.assert_allclose(run["losses"][optimizer], reference["losses"][optimizer], rtol=1e-4,
                                       err_msg=f"{path} {optimizer}")


@pytest.mark.skipif(not PORTABLE, reason="only a portable build has more than one path")
@pytest.mark.parametrize("path", ["baseline", "avx2", "avx512"])
def test_training_is_bitwise_on_any_thread_count_within_a_path(path):
    if path not in _core.SIMD_PATHS:
        pytest.skip(f"this CPU cannot run {path}")
    one, two = child_results(path, threads=1), child_results(path, threads=2)
    assert one["losses"] == two["losses"]


@pytest.mark.skipif(not PORTABLE, reason="a native build is compiled for one CPU")
def test_no_function_outside_the_wide_paths_uses_an_avx_instruction():
    """The baseline path must run on any x86-64 CPU. A header parsed inside a path's target region
    would compile its inline functions for that path, and the linker could hand that copy to the
    baseline path: look at every function of the module for VEX/EVEX instructions."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump not found")
    module = _core.__file__
    symbols = subprocess.run([objdump, "-t", module], capture_output=True, text=True, check=True).stdout
    if "no symbols" in symbols or "avx512" not in symbols:
        # Without the local symbols, the listing files each static function under the exported one
        # before it, and the check would blame the wrong functions.
        pytest.skip("the module is stripped (pybind11 strips Release builds): .ci/portable builds one that is not")
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", module], capture_output=True, text=True,
                             check=True).stdout
    # Functions with internal linkage (static, anonymous namespace) are called only from their own
    # translation unit, which is one path's; the ones to check are those the linker may share.
    local = {int(fields[0], 16) for fields in (line.split() for line in symbols.splitlines())
             if len(fields) > 3 and re.fullmatch(r"[0-9a-f]{16}", fields[0]) and fields[1] == "l" and "F" in fields[2:4]}
    wide = re.compile(r"^v[a-z]|%[yz]mm|%k[0-7]")
    offenders: dict[str, int] = {}
    function = None
    for line in listing.splitlines():
        head = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if head:
            function = None if int(head.group(1), 16) in local else head.group(2)
            continue
        fields = line.split("\t")
        if function is None or len(fields) < 2 or not wide.search(fields[1].strip()):
            continue
        if "::avx2::" in function or "::avx512::" in function:
            continue
        offenders[function] = offenders.get(function, 0) + 1
    assert not offenders, f"AVX instructions outside the avx2/avx512 paths: {sorted(offenders)[:10]}"
    # The check can fail: the wide paths' own functions do use those instructions.
    assert re.search(r"initlab::avx512::.*\n(?:.*\n)*?.*%zmm", listing)


CROSS_CXX = shutil.which("aarch64-linux-gnu-g++")
QEMU = shutil.which("qemu-aarch64")


def build_cross_check(cxx: str, arch_flags: list[str], out_dir) -> str:
    """Compile tests/native/cross_check.cpp with the core's GEMM and fills (the flags CMakeLists.txt
    gives random.cpp) and return the executable's path."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = str(out_dir / "cross_check")
    sources = [("cpp/src/gemm.cpp", ["-fno-trapping-math", "-fno-math-errno"]),
               ("cpp/src/random.cpp", ["-ffp-contract=off", "-fno-math-errno"]),
               ("cpp/src/parallel.cpp", []), ("tests/native/cross_check.cpp", [])]
    objects = []
    for source, flags in sources:
        obj = str(out_dir / (os.path.basename(source) + ".o"))
        subprocess.run([cxx, "-std=c++17", "-O2", "-fopenmp", *arch_flags, *flags, "-I", os.path.join(repo, "cpp/include"),
                        "-c", os.path.join(repo, source), "-o", obj], check=True, capture_output=True, timeout=600)
        objects.append(obj)
    subprocess.run([cxx, "-fopenmp", *objects, "-o", exe], check=True, capture_output=True, timeout=600)
    return exe


@pytest.mark.skipif(CROSS_CXX is None or QEMU is None or shutil.which("g++") is None,
                    reason="needs aarch64-linux-gnu-g++ and qemu-aarch64 (Debian: g++-aarch64-linux-gnu, qemu-user)")
def test_aarch64_builds_the_baseline_path_and_draws_the_same_bits(tmp_path):
    """On aarch64 the core compiles its portable path (no x86 intrinsics outside guarded code), the
    GEMM matches its naive twin, and the fills are bit for bit those of x86-64 with AVX2/AVX-512."""
    (tmp_path / "arm").mkdir()
    (tmp_path / "x86").mkdir()
    arm = build_cross_check(CROSS_CXX, [], tmp_path / "arm")
    x86 = build_cross_check("g++", ["-march=native"], tmp_path / "x86")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    ran_arm = subprocess.run([QEMU, "-L", "/usr/aarch64-linux-gnu", arm], capture_output=True, text=True,
                             timeout=600, env=env)
    ran_x86 = subprocess.run([x86], capture_output=True, text=True, timeout=600, env=env)
    assert ran_arm.returncode == 0, ran_arm.stdout + ran_arm.stderr
    assert ran_x86.returncode == 0, ran_x86.stdout
    fills = [line for line in ran_arm.stdout.splitlines() if line.startswith("fill_")]
    assert len(fills) == 3
    assert fills == [line for line in ran_x86.stdout.splitlines() if line.startswith("fill_")]
