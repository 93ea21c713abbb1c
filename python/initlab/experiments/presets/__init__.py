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
from . import glorot2010, he2015, lessons, lsuv, saxe2013, schoenholz2017, xiao2018
from ._common import Preset

PRESETS: Dict[str, Preset] = {module.PRESET.name: module.PRESET
                              for module in (he2015, glorot2010, saxe2013, lsuv, lessons, schoenholz2017, xiao2018)}


def run_preset(name: str, *, reduced: bool = False, workers: Optional[int] = None,
               scheduler: Optional[str] = None, threads: Optional[int] = None,
               progress: Optional[bool] = None, out: Optional[str] = None, resume: bool = False) -> Comparison:
    """Run a preset (`PRESETS`) and check its claims; ``reduced=True`` is the quick size the tests use.

    A preset's grid is one `Data` with a list of specs, or several: ``{name: Data}`` with
    ``{name: [specs]}`` (each run then records its data set's name under ``"data"``).
    ``out``: record each run there as it finishes; ``resume=True``: skip the runs recorded there
    (`initlab.experiments.record`)."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is not known; valid: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    data, specs, config = preset.grid(bool(reduced))
    grids = list(data.items()) if isinstance(data, dict) else [(None, data)]
    all_specs = [s for name, _ in grids for s in (specs[name] if name is not None else specs)]
    log = _run_log(out, resume, {"sweep": name, "reduced": bool(reduced),
                                 "data": {str(key): data_fingerprint(d) for key, d in grids},
                                 "grid": hashlib.sha256("\n".join(s.key() for s in all_specs).encode()).hexdigest()[:16]})
    runs = []
    for data_name, grid_data in grids:
        grid_specs = specs[data_name] if data_name is not None else specs
        if threads is not None:
            grid_specs = [replace(spec, threads=threads) for spec in grid_specs]
        done = run_grid(grid_specs, grid_data, workers=workers, scheduler=scheduler, progress=progress,
                        desc=name if data_name is None else f"{name} ({data_name})",
                        log=None if log is None else log.scoped(data_name))
        if data_name is not None:
            for run in done:
                run["data"] = data_name
        runs += done
    described = ({key: d.describe() for key, d in data.items()} if isinstance(data, dict)
                 else data.describe())
    config = dict(config, data=described, reduced=bool(reduced), title=preset.title,
                  description=preset.description)
    return Comparison(runs, config, name=name, claims=preset.check(runs, config),
                      figure_maker=preset.figures)


__all__ = ["PRESETS", "Preset", "run_preset"]
