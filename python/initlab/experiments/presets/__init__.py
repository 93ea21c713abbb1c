"""The papers' experiments, one module each; `PRESETS` is their registry (one line a preset).

Each module defines `PRESET`: its grid, the claims it checks and the figures it draws.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Dict, Optional

from ..compare import Comparison, _run_log
from ..record import data_fingerprint
from ..grid import run_grid
from . import glorot2010, he2015, lsuv, saxe2013, schoenholz2017
from ._common import Preset

PRESETS: Dict[str, Preset] = {module.PRESET.name: module.PRESET
                              for module in (he2015, glorot2010, saxe2013, lsuv,
                                               schoenholz2017)}


def run_preset(name: str, *, reduced: bool = False, workers: Optional[int] = None,
               scheduler: Optional[str] = None, threads: Optional[int] = None,
               progress: Optional[bool] = None, out: Optional[str] = None, resume: bool = False) -> Comparison:
    """Run a preset (`PRESETS`) and check its claims; ``reduced=True`` is the quick size the tests use.

    ``out``: record each run there as it finishes; ``resume=True``: skip the runs recorded there
    (`initlab.experiments.record`)."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is not known; valid: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    data, specs, config = preset.grid(bool(reduced))
    if threads is not None:
        specs = [replace(spec, threads=threads) for spec in specs]
    log = _run_log(out, resume, {"sweep": name, "reduced": bool(reduced), "data": data_fingerprint(data),
                                 "grid": hashlib.sha256("\n".join(s.key() for s in specs).encode()).hexdigest()[:16]})
    runs = run_grid(specs, data, workers=workers, scheduler=scheduler, progress=progress, desc=name, log=log)
    config = dict(config, data=data.describe(), reduced=bool(reduced), title=preset.title,
                  description=preset.description)
    return Comparison(runs, config, name=name, claims=preset.check(runs, config),
                      figure_maker=preset.figures)


__all__ = ["PRESETS", "Preset", "run_preset"]
