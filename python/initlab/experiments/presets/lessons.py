"""Preset lessons: each lesson of the classic weight-initialization tutorial, measured.

(a) zero / constant init keeps a layer's units identical (symmetry is never broken) and the net
    learns no more than a one-unit-wide net;
(b) small random init 0.01·N(0, 1) in a deep net: the gradients vanish and training stalls;
(c) large random init N(0, 1): tanh saturates, a ReLU net's loss explodes and training diverges;
(d) gradient clipping keeps that ReLU run finite, and it trains;
(e) He init for ReLU and Xavier init for tanh train at depth;
(f) zero biases are fine once the weights are random;
(g) with a good init, regularization (L2, dropout) narrows the train/validation gap on a small
    training set (Gaussian blobs in 40 dimensions: 200 training points, 2000 validation points).

(a)-(f) run on digits; (g) on data drawn from normal distributions (`il.datasets.make_blobs`),
where the small training set overfits far more visibly than on digits.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional


from ... import datasets
from ..compare import Claim, Comparison
from ..runs import LN10, RunSpec, prepare_data
from ._common import Preset, _digits, _losses, _one, _runs

SYMMETRIC_INITS = ("zeros", "constant(value=0.05)")
LARGE_INIT = "normal(std=1.0)"
GOOD_INIT = {"tanh": "xavier_normal", "relu": "he_normal"}
ONE_UNIT_SEEDS = (0, 1, 2)
CLIP_NORM = 1.0
REGULARIZERS = {"none": {}, "L2 (weight_decay=0.03)": {"weight_decay": 0.03},
                "dropout 0.5": {"dropout": 0.5}}


def _sizes(reduced: bool) -> Dict[str, Any]:
    if reduced:
        return dict(digits_samples=1000, width=32, epochs=10, deep=10, deep_epochs=10, blob_val=1000,
                    reg_width=128, reg_epochs=40)
    return dict(digits_samples=None, width=64, epochs=15, deep=20, deep_epochs=15, blob_val=2000,
                reg_width=256, reg_epochs=40)


def _blobs(validation: int):
    """4 Gaussian blobs in 40 dimensions, centres in [-1, 1]^40, noise std 1.5: 200 training points
    (a net of 256 units memorizes them) and a large validation set (a low-noise gap estimate)."""
    X, y = datasets.make_blobs(200 + validation, 4, seed=0, features=40, std=1.5, box=(-1.0, 1.0))
    return prepare_data((X, y), val_fraction=validation / (200 + validation), seed=0, name="blobs")


def _lessons_grid(reduced: bool):
    size = _sizes(reduced)
    digits = _digits(reduced, max_samples=size["digits_samples"])
    common = dict(batch_size=32, optimizer="sgd", lr=0.01, momentum=0.9, target_accuracy=0.9)
    shallow = dict(common, depth=3, width=size["width"], epochs=size["epochs"])
    specs: List[RunSpec] = []
    for act in ("tanh", "relu"):
        good = GOOD_INIT[act]
        # (a) symmetry, (f) biases: 3 hidden layers
        for init in SYMMETRIC_INITS + (good,):
            specs.append(RunSpec(init=init, activation=act, label=f"a {act}", **shallow))
        specs += [RunSpec(init=good, activation=act, seed=seed, label=f"a {act} 1 unit",
                          **dict(shallow, width=1)) for seed in ONE_UNIT_SEEDS]
        specs.append(RunSpec(init=good, activation=act, bias_init="normal", label=f"f {act}", **shallow))
        # (b) vanishing, (e) depth
        deep = dict(common, depth=size["deep"], width=size["width"], epochs=size["deep_epochs"])
        specs += [RunSpec(init=init, activation=act, label=f"b {act} deep", **deep)
                  for init in ("small_random", good)]
    # (c) large random init, (d) clipping: 5 hidden layers
    middle = dict(shallow, depth=5)
    specs += [RunSpec(init=LARGE_INIT, activation="tanh", label="c tanh", **middle),
              RunSpec(init=GOOD_INIT["tanh"], activation="tanh", label="c tanh", **middle),
              RunSpec(init=LARGE_INIT, activation="relu", label="c relu", **middle),
              RunSpec(init=LARGE_INIT, activation="relu", clip_norm=CLIP_NORM, label="d relu clipped", **middle)]
    # (g) regularization on a small training set
    regular = dict(common, depth=2, width=size["reg_width"], epochs=size["reg_epochs"], activation="relu")
    blob_specs = [RunSpec(init="he_normal", label=f"g {name}", **regular, **options)
                  for name, options in REGULARIZERS.items()]
    config = dict(size, common=common, clip_norm=CLIP_NORM)
    return ({"digits": digits, "blobs": _blobs(size["blob_val"])},
            {"digits": specs, "blobs": blob_specs}, config)


# ---- checks ---------------------------------------------------------------------------------------

def _acc(run: Dict[str, Any]) -> float:
    value = run["final_val_accuracy"]
    return float(value) if value is not None else 0.0


def _stalled(run: Dict[str, Any], tol: float = 0.01) -> bool:
    losses = _losses(run)
    return bool(losses) and all(abs(loss - LN10) <= tol for loss in losses)


def _gap(run: Dict[str, Any]) -> Dict[str, float]:
    train = run["final_train_eval"]
    return {"loss": run["final_val_loss"] - train["loss"], "accuracy": train["accuracy"] - _acc(run)}


def _lessons_check(runs, config) -> List[Claim]:
    claims = []
    # (a) symmetry
    spreads, accs, one_unit, wide, verdicts_at_init = [], [], {}, {}, []
    for act in ("tanh", "relu"):
        for init in SYMMETRIC_INITS:
            run = _one(runs, label=f"a {act}", init=init)
            spreads.append((f"{act} {init}", max(run["unit_spread"])))
            verdicts_at_init.append(run["at_init"]["verdict"])
            accs.append((act, init, _acc(run)))
        wide[act] = _one(runs, label=f"a {act}", init=GOOD_INIT[act])
        one_unit[act] = max(_acc(r) for r in _runs(runs, label=f"a {act} 1 unit"))
    random_spread = min(min(wide[act]["unit_spread"]) for act in wide)
    claims.append(Claim(
        "(a) Zero and constant init keep every unit of a hidden layer identical through training",
        "largest difference between two units of a hidden layer after training (incoming weights, bias, "
        "outgoing weights): " + ", ".join(f"{name} {spread:g}" for name, spread in spreads)
        + f"; random init (xavier / he): at least {random_spread:.2f}; diagnose at init: "
        + ", ".join(dict.fromkeys(verdicts_at_init)),
        all(spread == 0.0 for _, spread in spreads) and random_spread > 0))
    collapsed = [(act, init, acc, _one(runs, label=f"a {act}", init=init)["one_unit_val_accuracy"])
                 for act, init, acc in accs]
    claims.append(Claim(
        "(a) ... so the network is a one-unit-wide network and learns no more than one",
        "val acc of the trained net / of the same net collapsed to one unit per hidden layer: "
        + ", ".join(f"{act} {init} {acc:.1%} / {'-' if one is None else f'{one:.1%}'}"
                    for act, init, acc, one in collapsed)
        + "; a width-1 net with random init (best of 3 seeds): "
        + ", ".join(f"{act} {acc:.1%}" for act, acc in one_unit.items())
        + "; random init at full width: " + ", ".join(f"{act} {_acc(r):.1%}" for act, r in wide.items()),
        all(one is not None and abs(acc - one) <= 0.005 and acc < _acc(wide[act]) - 0.3
            for act, _, acc, one in collapsed)))
    # (b) vanishing gradients with small random init
    ratios, stalls, verdicts = [], [], []
    for act in ("tanh", "relu"):
        small = _one(runs, label=f"b {act} deep", init="small_random")
        good = _one(runs, label=f"b {act} deep", init=GOOD_INIT[act])
        ratios.append((act, small["at_init"]["grad_norm"][0] / good["at_init"]["grad_norm"][0]))
        stalls.append((act, small, good))
        verdicts.append(small["at_init"]["verdict"])
    deep = config["deep"]
    claims.append(Claim(
        f"(b) Small random init 0.01·N(0, 1), {deep} hidden layers: the gradients vanish",
        "‖dL/dW‖ of the first layer at init, small_random / (xavier for tanh, he for relu): "
        + ", ".join(f"{act} {ratio:.1e}" for act, ratio in ratios) + f"; diagnose: {', '.join(verdicts)}",
        all(ratio < 1e-6 for _, ratio in ratios) and all(v == "vanishing" for v in verdicts)))
    claims.append(Claim(
        f"(b) ... and training stalls at the chance loss ln(10) = {LN10:.3f}",
        "; ".join(f"{act}: small_random loss {min(_losses(s)):.4f}..{max(_losses(s)):.4f} over "
                  f"{len(_losses(s))} epochs, {GOOD_INIT[act]} final loss {g['final_loss']:.3f}"
                  for act, s, g in stalls),
        all(_stalled(s) and g["final_loss"] < 0.5 * LN10 for _, s, g in stalls)))
    # (c) large random init
    big_t, good_t = _one(runs, label="c tanh", init=LARGE_INIT), _one(runs, label="c tanh", init=GOOD_INIT["tanh"])
    sat_big, sat_good = big_t["at_init"]["saturated"][:-1], good_t["at_init"]["saturated"][:-1]
    claims.append(Claim(
        "(c) Large random init N(0, 1) saturates tanh (and it learns worse than Xavier)",
        f"saturated fraction per hidden layer at init: N(0, 1) {min(sat_big):.0%}..{max(sat_big):.0%}, "
        f"xavier_normal {min(sat_good):.0%}..{max(sat_good):.0%}; val acc {_acc(big_t):.1%} vs {_acc(good_t):.1%}",
        min(sat_big) >= 0.5 and max(sat_good) < 0.1 and _acc(big_t) < _acc(good_t)))
    big_r = _one(runs, label="c relu", init=LARGE_INIT)
    loss0 = big_r["at_init"]["loss"]
    claims.append(Claim(
        "(c) ... and makes a ReLU net's loss explode: training diverges",
        f"loss at init {loss0:.3g} (chance {LN10:.3f}); "
        + (f"diverged: {big_r['stop_reason']}" if big_r["diverged"] else
           f"did not diverge; final loss {big_r['final_loss']}"),
        loss0 > 100 * LN10 and (big_r["diverged"] or not (big_r["final_loss"] or 0) < LN10)))
    # (d) clipping
    clipped = _one(runs, label="d relu clipped")
    losses = _losses(clipped)
    finite = bool(losses) and all(math.isfinite(v) for v in losses) and not clipped["diverged"]
    claims.append(Claim(
        f"(d) Gradient clipping (clip_norm={CLIP_NORM:g}) keeps that ReLU run finite, and it trains",
        f"diverged: {'yes' if clipped['diverged'] else 'no'}; training loss {loss0:.3g} at init, "
        f"{losses[0]:.3g} after epoch 1, {losses[-1]:.3g} after epoch {len(losses)}; val acc {_acc(clipped):.1%}"
        if losses else f"no epoch finished: {clipped['stop_reason']}",
        finite and losses[-1] < 0.05 * loss0 and _acc(clipped) > 0.3))
    # (e) depth
    trained = [(act, _one(runs, label=f"b {act} deep", init=GOOD_INIT[act])) for act in ("tanh", "relu")]
    claims.append(Claim(
        f"(e) He init for ReLU and Xavier init for tanh train at depth ({deep} hidden layers)",
        ", ".join(f"{act} {GOOD_INIT[act]}: final loss {r['final_loss']:.3f}, val acc {_acc(r):.1%}, "
                  f"diagnose at init {r['at_init']['verdict']}" for act, r in trained),
        all(_acc(r) >= 0.85 for _, r in trained)))
    # (f) biases
    pairs = [(act, wide[act], _one(runs, label=f"f {act}")) for act in ("tanh", "relu")]
    claims.append(Claim(
        "(f) Zero biases are fine once the weights are random",
        "; ".join(f"{act} {GOOD_INIT[act]}: val acc with zero biases {_acc(z):.1%}, with N(0, 0.05²) biases "
                  f"{_acc(b):.1%}; smallest unit spread with zero biases {min(z['unit_spread']):.2f}"
                  for act, z, b in pairs),
        all(_acc(z) >= _acc(b) - 0.02 and min(z["unit_spread"]) > 0 for _, z, b in pairs)))
    # (g) regularization
    plain = _one(runs, label="g none")
    gaps = {name: _gap(_one(runs, label=f"g {name}")) for name in REGULARIZERS}
    claims.append(Claim(
        "(g) With a good init, regularization (L2, dropout) narrows the train/validation gap on a small "
        "training set",
        "val loss - train loss (train accuracy - val accuracy): "
        + ", ".join(f"{name} {g['loss']:.3f} ({g['accuracy']:.1%})" for name, g in gaps.items())
        + f"; train accuracy without regularization {plain['final_train_eval']['accuracy']:.1%}",
        all(gaps[name]["loss"] < gaps["none"]["loss"] and gaps[name]["accuracy"] < gaps["none"]["accuracy"]
            for name in REGULARIZERS if name != "none")))
    return claims


# ---- figures --------------------------------------------------------------------------------------

def _curve(ax, run, key, style="-", label=None, color=None):
    epochs = [h["epoch"] for h in run["history"]]
    values = [h[key] for h in run["history"]]
    return ax.plot(epochs, values, style, color=color, label=label)


def _legend_below(ax, columns: int = 2) -> None:
    """The legend under the axes, never over the curves."""
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, frameon=False)


def _lessons_figures(result: Comparison, out_dir: str) -> List[Optional[str]]:
    from ...inspect import figures
    runs = result.runs
    paths = []

    # (a) + (f): validation accuracy per epoch
    fig, axes = figures._figure(1, 2, 5.0, 4.6)
    for ax, act in zip(axes[0], ("tanh", "relu")):
        for run in _runs(runs, label=f"a {act}"):
            _curve(ax, run, "val_accuracy", "-",
                   f"{run['init']} (after training, units differ by {max(run['unit_spread']):.2g})")
        best = max(_runs(runs, label=f"a {act} 1 unit"), key=_acc)
        _curve(ax, best, "val_accuracy", "--", f"{best['init']}, 1 unit wide (best seed)", "grey")
        _curve(ax, _one(runs, label=f"f {act}"), "val_accuracy", ":", f"{GOOD_INIT[act]}, N(0, 0.05²) biases", "black")
        ax.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{act}, 3 hidden layers")
        _legend_below(ax, 1)
    fig.suptitle("Lessons (a), (f): constant init never breaks symmetry; zero biases are fine")
    paths.append(figures._save(fig, os.path.join(out_dir, "lessons_symmetry.png")))

    # (b) + (e): gradient norm per layer at init, training loss
    fig, axes = figures._figure(1, 2, 5.0, 4.4)
    deep = _runs(runs, label="b tanh deep") + _runs(runs, label="b relu deep")
    for run in deep:
        norms = run["at_init"]["grad_norm"]
        axes[0, 0].plot(range(1, len(norms) + 1), figures._positive(norms), "o-", ms=3,
                        label=f"{run['spec']['activation']} {run['init']}")
        _curve(axes[0, 1], run, "loss", "-", f"{run['spec']['activation']} {run['init']}")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_xlabel("layer (1 = input side)")
    figures._integer_ticks(axes[0, 0])
    axes[0, 0].set_ylabel("‖dL/dW‖ at init")
    axes[0, 0].set_title("gradient norm per layer at init")
    axes[0, 1].axhline(LN10, color="grey", lw=0.8, ls="--", label="chance: ln(10)")
    axes[0, 1].set_xlabel("epoch")
    axes[0, 1].set_ylabel("training loss (nats)")
    axes[0, 1].set_title("training")
    _legend_below(axes[0, 1])
    _legend_below(axes[0, 0])
    fig.suptitle(f"Lessons (b), (e): {result.config['deep']} hidden layers, small random init "
                 "0.01·N(0, 1) vs Xavier (tanh) / He (relu)")
    paths.append(figures._save(fig, os.path.join(out_dir, "lessons_vanishing.png")))

    # (c) + (d): saturation per layer, loss explosion and clipping
    fig, axes = figures._figure(1, 2, 5.0, 4.4)
    for run in _runs(runs, label="c tanh"):
        sat = run["at_init"]["saturated"][:-1]
        axes[0, 0].plot(range(1, len(sat) + 1), sat, "o-", ms=3, label=f"tanh {run['init']}")
    axes[0, 0].set_ylim(-0.02, 1.02)
    axes[0, 0].set_xlabel("hidden layer")
    axes[0, 0].set_ylabel("saturated fraction (|tanh| > 0.99)")
    axes[0, 0].set_title("tanh: saturation at init")
    figures._integer_ticks(axes[0, 0])
    _legend_below(axes[0, 0], 1)
    ax = axes[0, 1]
    for run in _runs(runs, label="c relu") + _runs(runs, label="d relu clipped"):
        name = f"relu {run['init']}" + (f", clip_norm={CLIP_NORM:g}" if run["spec"]["clip_norm"] else "")
        points = [(0, run["at_init"]["loss"])] + [(h["epoch"], h["loss"]) for h in run["history"]]
        line = ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=3, label=name)
        if run["diverged"]:
            ax.plot([points[-1][0] + 0.5], [points[-1][1]], "x", ms=10, color=line[0].get_color(),
                    label="diverged (non-finite loss) in epoch 1" if len(points) == 1 else "diverged")
    ax.axhline(LN10, color="grey", lw=0.8, ls="--", label="chance: ln(10)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch (0 = at init)")
    ax.set_ylabel("training loss (nats, log scale)")
    ax.set_title("relu: exploding loss, with and without clipping")
    _legend_below(ax, 1)
    fig.suptitle("Lessons (c), (d): large random init N(0, 1), 5 hidden layers")
    paths.append(figures._save(fig, os.path.join(out_dir, "lessons_exploding.png")))

    # (g): train vs validation loss
    fig, axes = figures._figure(1, 1, 6.4, 4.6)
    ax = axes[0, 0]
    for run in [r for r in runs if r["label"].startswith("g ")]:
        line = _curve(ax, run, "loss", "-", f"{run['label'][2:]}: training")
        _curve(ax, run, "val_loss", ":", f"{run['label'][2:]}: validation", line[0].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss (nats, log scale)")
    _legend_below(ax)
    fig.suptitle("Lesson (g): He init, 200 training points (Gaussian blobs, 40 dimensions);\n"
                 "L2 and dropout narrow the train/validation gap (training loss: mean over the epoch, dropout on)")
    paths.append(figures._save(fig, os.path.join(out_dir, "lessons_regularization.png")))
    return paths


PRESET = Preset("lessons", "The classic weight-initialization tutorial, lesson by lesson",
                "(a) zero/constant init never breaks symmetry, (b) 0.01·N(0,1) vanishes, (c) N(0,1) "
                "saturates tanh and explodes ReLU, (d) clipping keeps it finite, (e) He/Xavier train at "
                "depth, (f) zero biases are fine, (g) L2 and dropout narrow the generalization gap; "
                "digits and Gaussian blobs", _lessons_grid, _lessons_check, _lessons_figures)
