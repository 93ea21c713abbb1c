"""Sweeps that lose nothing: each finished run is appended to ``runs.jsonl`` in the output folder
as it ends, and ``resume=True`` skips the runs already recorded there.

The file is JSON lines: a header ``{"format": "initlab.sweep", "version": 1, "config": {...}}``,
the sweep's settings, then one ``{"key": RunSpec.key(), "run": {...}}`` per finished run, each
written with one fsynced append (`initlab._files.append_line`). A kill during a write leaves a
partial last line: on resume it is dropped with a warning and the complete runs are kept. Resuming
with other settings than the header's is an error that names them; the results of a resumed sweep
equal an uninterrupted one's (every run is deterministic, and every run's dict, fresh or read back,
goes through the same JSON round trip).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from .._files import append_line, write_text_atomically
from .runs import Data, RunSpec

RESULTS_FILE = "runs.jsonl"
FORMAT_NAME = "initlab.sweep"
FORMAT_VERSION = 1


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a recorded sweep: what was finished is in ``path``."""

    def __init__(self, path: str, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} runs are recorded in {path}")
        self.path, self.done, self.total = path, done, total


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (json.dumps' default=)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot record {type(value).__name__} in a results file")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_plain, allow_nan=True, separators=(",", ":"))


def data_fingerprint(data: Data) -> Dict[str, Any]:
    """The data's description and a SHA-256 of its arrays (a resume on other data is refused)."""
    digest = hashlib.sha256()
    for array in (data.X_train, data.y_train, data.X_val, data.y_val):
        digest.update(np.ascontiguousarray(array).tobytes())
    return dict(data.describe(), sha256=digest.hexdigest()[:16])


class RunLog:
    """The append-only results file of one sweep (see the module docstring)."""

    def __init__(self, out_dir: "os.PathLike[str] | str", config: Dict[str, Any], *, resume: bool = False) -> None:
        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, RESULTS_FILE)
        self.config = json.loads(_dumps(config))     # as the header will read back
        self.done: Dict[str, Dict[str, Any]] = {}
        self.scope = ""                              # see scoped()
        if resume and os.path.exists(self.path):
            self._load()
        else:
            write_text_atomically(self.path, _dumps(self._header()) + "\n", "sweep")

    def _header(self) -> Dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": self.config}

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            raw = f.read()
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]           # the part after the last newline
        records, dropped = [], 0
        for i, line in enumerate(complete):
            try:
                records.append(json.loads(line))
            except ValueError:
                if i == len(complete) - 1 and not tail:
                    dropped += 1                         # a torn last line that got its newline
                    continue
                raise ValueError(f"resume: {self.path} line {i + 1} is not a JSON record; the file "
                                 "is damaged (move it away to start the sweep afresh)") from None
        if tail.strip():
            dropped += 1
        if not records or records[0].get("format") != FORMAT_NAME:
            raise ValueError(f"resume: {self.path} is not an initlab sweep results file")
        if records[0].get("version") != FORMAT_VERSION:
            raise ValueError(f"resume: {self.path} has format version {records[0].get('version')}, "
                             f"this initlab reads {FORMAT_VERSION}")
        differing = _differences(records[0].get("config", {}), self.config)
        if differing:
            raise ValueError(f"resume: {self.path} was written by a different sweep configuration: "
                             + "; ".join(differing) + ". Use another --out folder, or drop --resume "
                             "to start this sweep afresh there")
        for record in records[1:]:
            self.done[record["key"]] = record["run"]
        if dropped:
            warnings.warn(f"resume: {self.path} ends with a partial record (the sweep was killed while "
                          f"writing it); it is ignored and {len(self.done)} complete runs are kept",
                          RuntimeWarning, stacklevel=3)
            # rewrite without the torn tail, so that appended records start on a line of their own
            write_text_atomically(self.path, "".join(_dumps(r) + "\n" for r in records), "sweep")

    def scoped(self, scope: Optional[str]) -> "RunLog":
        """The same file for the runs of one of several data sets (a preset with several grids):
        their keys are prefixed with ``scope``, so equal specs on other data never match."""
        view = copy.copy(self)                       # shares path and the `done` dict
        view.scope = "" if scope is None else f"{scope}/"
        return view

    def _key(self, spec: RunSpec) -> str:
        return self.scope + spec.key()

    def pending(self, specs: Iterable[RunSpec]) -> List[int]:
        """Positions of the specs not recorded yet."""
        return [i for i, spec in enumerate(specs) if self._key(spec) not in self.done]

    def recorded(self, spec: RunSpec) -> Optional[Dict[str, Any]]:
        return self.done.get(self._key(spec))

    def record(self, spec: RunSpec, run: Dict[str, Any]) -> Dict[str, Any]:
        """Append a finished run; returns it as read back from the file (JSON-normalized)."""
        line = _dumps({"key": self._key(spec), "run": run})
        append_line(self.path, line, "sweep")
        normalized = json.loads(line)["run"]
        self.done[self._key(spec)] = normalized
        return normalized


def _differences(recorded: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    out = []
    for key in sorted(set(recorded) | set(current)):
        if key not in recorded:
            out.append(f"{key} is not set there and is {current[key]!r} now")
        elif key not in current:
            out.append(f"{key} is {recorded[key]!r} there and not set now")
        elif recorded[key] != current[key]:
            out.append(f"{key} is {recorded[key]!r} there and {current[key]!r} now")
    return out
