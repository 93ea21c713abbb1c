"""Compare initializers on the same data and reproduce the classic initialization papers.

The question this module answers: *which initialization lets this network learn, and why?*
`compare` trains one network per initializer (and per seed) on the same split of the same data and
records, for each run:

- before training, on a fixed probe batch (the first ``probe_size`` training rows): the
  ``Network.diagnose`` table (activation moments, saturated and dead fractions, ‖dW‖ and the
  standard deviation of the back-propagated gradient dL/dZ per layer), its verdict, and histograms
  of every hidden layer's activations (Glorot & Bengio 2010, figure 6);
- during training (``Network.fit``): the per-epoch history, the epochs needed to reach
  ``target_accuracy`` on the validation set (and ``loss_threshold`` on the training loss when given),
  and the time spent.

A grid of runs is a list of `RunSpec`; `run_one(spec, data)` is a pure function of them (the
network's seed fixes its weights and its shuffling; the kernels give bitwise the same results on
any thread count), so the grid can run serially, on local processes (``workers=N``) or on a Dask
cluster (``scheduler=ADDRESS``) with identical results.

Presets reproduce published findings at a size that runs in minutes on two cores; each preset
states the paper's claim, measures it and says whether it held (`Comparison.claims`):

    he2015      He et al. 2015, "Delving deep into rectifiers": 22 and 30 ReLU layers, Xavier vs He.
    glorot2010  Glorot & Bengio 2010: 5 tanh / sigmoid layers, "standard" U(±1/√n) vs normalized.
    saxe2013    Saxe et al. 2013: deep linear nets, epochs to a loss threshold vs depth,
                orthogonal vs scaled Gaussian.
    lsuv        Mishkin & Matas 2016, "All you need is a good init": LSUV vs orthogonal, He, Xavier.
    lessons     the classic weight-initialization tutorial, lesson by lesson: symmetry of constant
                init, vanishing and exploding random init, clipping, He/Xavier at depth, zero
                biases, regularization with a good init.
    schoenholz2017  Schoenholz et al. 2017, "Deep information propagation": trainable depth of tanh
                nets over sigma_w2 against 6 xi_c of mean-field theory (`initlab.theory`).

Sweeps lose nothing: with ``out=DIR`` every finished run is appended to ``DIR/runs.jsonl`` as it
ends, and ``resume=True`` skips the runs recorded there (`initlab.experiments.record`), so a sweep
stopped by Ctrl-C or a lost machine loses only the runs in flight; on Dask, a dead worker's runs
are rescheduled by the scheduler.

>>> import initlab as il
>>> result = il.experiments.compare("digits", inits=["he_normal"], depth=2, width=16, epochs=1,
...                                 progress=False)
>>> result.runs[0]["init"], len(result.runs[0]["history"])
('he_normal', 1)
"""
from __future__ import annotations

from .compare import Claim, Comparison, compare
from .grid import run_grid, suggest_threads
from .presets import PRESETS, Preset, run_preset
from .record import RunLog, SweepInterrupted
from .runs import DEFAULT_INITS, DEFAULTS, Data, RunSpec, prepare_data, run_one

__all__ = ["Data", "RunSpec", "Comparison", "Claim", "Preset", "PRESETS", "DEFAULTS", "DEFAULT_INITS",
           "prepare_data", "run_one", "run_grid", "compare", "run_preset", "suggest_threads", "RunLog",
           "SweepInterrupted"]
