"""The ``initlab`` command line (also ``python -m initlab``).

    initlab compare     which initialization lets this network learn, and why? (one run per init)
    initlab compare --preset he2015|glorot2010|saxe2013|lsuv|lessons|schoenholz2017|xiao2018   reproduce a paper's finding, or the tutorial's lessons
    initlab diagnose    the per-layer diagnosis of a network at initialization, with a verdict
    initlab train       train one network, save it with its report and plots
    initlab bench       time the kernels against numpy and PyTorch
    initlab info        build and runtime facts

Errors print one line on stderr (``initlab COMMAND: error: ...``) and exit with status 1
(2 for a bad command line, 130 after Ctrl-C); never a traceback (set INITLAB_DEBUG=1 to see one).
A closed stdout (``initlab info --json | head -3``) ends quietly with status 0.

The network's shape is ``--depth N --width W`` or ``--hidden 256,128`` (hidden widths; the input
and output widths come from the data) in every command; ``compare`` and ``train`` take fit's
training options (``--optimizer --lr --momentum --weight-decay --dropout --clip-norm --clip-value
--batch-size --bias-init --lr-schedule``); initializers and schedules are ``NAME`` or
``NAME(key=value, ...)``.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import re
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .nn.optimizers import OPTIMIZERS, takes
from .nn.schedules import parse_schedule

BENCH_MODULES = ("init_fill", "gemm", "train_step", "conv")
# What --quick passes to each module's run() (only the keywords its signature takes).
QUICK_ARGUMENTS = {"init_fill": {"size": 1024, "repeats": 2}, "gemm": {"quick": True},
                   "train_step": {"quick": True, "networks": ["tiny", "mnist"]},
                   "conv": {"quick": True, "cases": ["digits-conv1", "digits-conv2"]}}


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


# ---- argument types (argparse turns their ValueError into a one-line usage error) ---------------

def _bounded(kind: type, minimum: float, what: str) -> Callable[[str], Any]:
    """An argparse type: `kind(text)`, finite and >= minimum, else a usage error saying `what`."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _bounded(int, 1, "an int >= 1")
_depth = _bounded(int, 1, "an int >= 1 (hidden layers: the network needs at least one)")
_non_negative_int = _bounded(int, 0, "an int >= 0")
_non_negative_float = _bounded(float, 0.0, "a finite number >= 0")


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _dropout_rate(text: str) -> float:
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _int_list(text: str) -> List[int]:
    """``0,1,2`` or a range ``0-4`` (inclusive)."""
    values: List[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                low, high = part.split("-", 1)
                values.extend(range(int(low), int(high) + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints or a range like 0-4, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected ints >= 0, got {text!r}")
    return values


def _width_list(text: str) -> List[int]:
    """``256,128``: hidden widths, each an int >= 1."""
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 256,128, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    return widths


def _init_list(text: str) -> List[str]:
    """``zeros,normal(std=1.0),he_normal(mode=fan_out)``: split at the commas outside parentheses
    (each spec is checked when the runs are built, with the initializer's own message)."""
    from .init import split_specs
    try:
        return split_specs(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _lr_schedule(text: str) -> Any:
    """``cosine(T_max=30)`` -> ``("cosine", {"T_max": 30})``; a bare name -> ``"constant"`` or
    ``(name, {})``: the form `Network.fit(lr_schedule=...)` takes. The one parser of the schedule
    syntax is nn/schedules.py's parse_schedule (fit reads the same strings); its errors name
    --lr-schedule and become argparse's."""
    try:
        spec = parse_schedule(text, "--lr-schedule")
    except (TypeError, ValueError) as e:  # argparse writes "argument --lr-schedule: " before it
        raise argparse.ArgumentTypeError(re.sub(r"^--lr-schedule:? ", "", str(e))) from None
    name, params = (spec, {}) if isinstance(spec, str) else spec
    return "constant" if name == "constant" else (name, params)


def _name_list(text: str) -> List[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


# ---- the parser ---------------------------------------------------------------------------------

def _add_network_options(p: argparse.ArgumentParser, defaults: Dict[str, Any], *, init_list: bool) -> None:
    from .nn.activations import ACTIVATIONS
    g = p.add_argument_group("network (the input and output widths come from the data)")
    g.add_argument("--depth", type=_depth, default=None,
                   help=f"hidden layers, >= 1; the net has depth+1 weight layers (default {defaults['depth']})")
    g.add_argument("--width", type=_positive_int, default=None,
                   help=f"units per hidden layer (default {defaults['width']})")
    g.add_argument("--hidden", type=_width_list, default=None, metavar="WIDTHS",
                   help="hidden widths, e.g. 256,128 (instead of --depth/--width)")
    # gone (API.md): it meant all widths in diagnose and hidden widths in train; an error names --hidden
    g.add_argument("--layers", default=None, help=argparse.SUPPRESS)
    g.add_argument("--activation", default=None,
                   help=f"hidden activation: {', '.join(ACTIVATIONS)} (default {defaults['activation']})")
    if init_list:
        g.add_argument("--inits", type=_init_list, default=None, metavar="SPECS",
                       help="comma-separated initializers, each NAME or NAME(key=value, ...), e.g. "
                            "\"zeros,normal(std=1.0),he_normal(mode=fan_out)\" (`initlab info` lists them; "
                            f"'lsuv' too) (default {','.join(defaults['inits'])})")
    else:
        g.add_argument("--init", default=None,
                       help="initializer, NAME or NAME(key=value, ...) (default he_normal)")


def _or_list(names: Sequence[str], word: str = "or") -> str:
    """'a, b, c or d'"""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


def _add_training_options(p: argparse.ArgumentParser, defaults: Dict[str, Any]) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_non_negative_int, default=None, help=f"(default {defaults['epochs']})")
    g.add_argument("--batch-size", type=_positive_int, default=None, help=f"(default {defaults['batch_size']})")
    g.add_argument("--optimizer", default=None,
                   help=f"{_or_list(list(OPTIMIZERS))} (default {defaults['optimizer']})")
    g.add_argument("--lr", type=_non_negative_float, default=None, help=f"learning rate (default {defaults['lr']})")
    g.add_argument("--momentum", type=_non_negative_float, default=None,
                   help=f"for {_or_list(takes('momentum'), 'and')} (default {defaults['momentum']})")
    g.add_argument("--weight-decay", type=_non_negative_float, default=None,
                   help="L2 penalty (sgd, adam, rmsprop) or decoupled decay (adamw) (default 0)")
    g.add_argument("--dropout", type=_dropout_rate, default=None, help="dropout rate of the hidden layers (default 0)")
    g.add_argument("--clip-norm", type=_positive_float, default=None,
                   help="scale all gradients together to a global L2 norm of at most this (default: off)")
    g.add_argument("--clip-value", type=_positive_float, default=None,
                   help="clip each gradient element to [-v, v] (default: off)")
    g.add_argument("--bias-init", default=None, metavar="SPEC", help="initializer of the biases (default zeros)")
    g.add_argument("--lr-schedule", type=_lr_schedule, default=None, metavar="SPEC",
                   help="per-epoch learning rate: constant, step(step_size=10,gamma=0.5), exponential(gamma=0.9), "
                        "cosine(T_max=30), cosine(T_max=30,eta_min=0.001) or warmup(epochs=5) (default constant)")


def build_parser() -> argparse.ArgumentParser:
    from .experiments import DEFAULTS, PRESETS
    parser = argparse.ArgumentParser(
        prog="initlab",
        description="initlab: a laboratory for neural-network weight initialization. "
                    "Run `initlab compare` to see which initialization lets a network learn, and why.",
        epilog="Each command has its own -h. `python -m initlab` is the same program.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # compare
    presets = "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items())
    p = sub.add_parser(
        "compare", help="train one network per initializer on the same data and compare",
        description="Train one network per initializer (and per seed) on the same data and print: final "
                    "training loss, validation accuracy, epochs to the target accuracy, the ratio of the "
                    "gradient norms of the first and last layer at init, the diagnosis verdict at init and "
                    "the time. With --out, write results.json, summary.csv, history.csv, layers.csv and "
                    "PNG figures. With no options it runs the built-in digits data "
                    f"(a {DEFAULTS['depth']}-hidden-layer ReLU net, {len(DEFAULTS['inits'])} initializers).",
        epilog=f"Presets (--preset NAME, add --reduced for a quick small version): {presets}.")
    p.add_argument("--data", default=None,
                   help="built-in data set (digits; digits-images: the same as 8x8x1 images, a small "
                        "CNN per initializer; spirals, moons, blobs) or a file: .npz (keys X, y), "
                        ".csv/.tsv (label in the last column), or MNIST IDX images (labels found next to "
                        "them) (default digits)")
    _add_network_options(p, DEFAULTS, init_list=True)
    _add_training_options(p, DEFAULTS)
    p.add_argument("--seeds", type=_int_list, default=None, help="seeds, e.g. 0,1,2 or 0-4 (default 0)")
    p.add_argument("--target-accuracy", type=_fraction, default=None,
                   help=f"validation accuracy whose first epoch is reported (default {DEFAULTS['target_accuracy']})")
    p.add_argument("--max-samples", type=_positive_int, default=None, help="use at most this many samples")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="reproduce a paper's experiment (fixes data, network and training)")
    p.add_argument("--reduced", action="store_true", help="with --preset: the small, quick version")
    _add_run_options(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write JSON, CSV and PNG figures into DIR; each run is recorded in DIR/runs.jsonl "
                        "as it finishes")
    p.add_argument("--resume", action="store_true",
                   help="with --out: skip the runs already recorded in DIR/runs.jsonl (an interrupted sweep "
                        "continues where it stopped)")
    p.set_defaults(handler=cmd_compare)

    # diagnose
    p = sub.add_parser(
        "diagnose", help="per-layer diagnosis of a network at initialization, with a verdict",
        description="Build a network (or load a saved one) and print Network.diagnose: per-layer "
                    "activation moments, saturated and dead fractions, gradient norms, the Jacobian's "
                    "singular values, every finding (symmetric, exploding, saturated, vanishing, dead; "
                    "causes first) and the verdict (the first finding, or healthy), each with the "
                    "initializer to use in initlab and in PyTorch. Without --data the batch is N(0, 1) noise and the "
                    "backward pass starts from a random unit-variance output gradient.")
    p.add_argument("--model", default=None, metavar="PATH", help="a network saved with `initlab train` / Network.save")
    _add_network_options(p, {"depth": 10, "width": 256, "activation": "relu"}, init_list=False)
    p.add_argument("--data", default=None, help="data to diagnose on: built-in name or file (default: noise)")
    p.add_argument("--samples", type=_positive_int, default=256, help="rows in the batch (default 256)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="network seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    p.set_defaults(handler=cmd_diagnose)

    # train
    train_defaults = dict(DEFAULTS, depth=2, width=128, epochs=20)
    p = sub.add_parser(
        "train", help="train one network; save the model, the report and its plots",
        description="Train one network on a data set, print the report and the validation result; with "
                    "--out write model.npz (Network.save), report.json, history.csv, layer_stats.csv and "
                    "report.png.")
    p.add_argument("--data", default=None, help="built-in data set or file (default digits)")
    _add_network_options(p, train_defaults, init_list=False)
    _add_training_options(p, train_defaults)
    p.add_argument("--seed", type=_non_negative_int, default=0, help="network seed (default 0)")
    p.add_argument("--max-samples", type=_positive_int, default=None, help="use at most this many samples")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="kernel threads (default: 1 for small networks, where threads do not pay off, else all cores)")
    p.add_argument("--out", default=None, metavar="DIR", help="write the model, report and plots into DIR")
    p.set_defaults(handler=cmd_train)

    # bench
    p = sub.add_parser(
        "bench", help="time the kernels against numpy and PyTorch",
        description="Run the benchmark modules (" + ", ".join(f"initlab.bench.{m}" for m in BENCH_MODULES)
                    + ") and print their tables; a module that cannot be imported is reported and skipped.")
    p.add_argument("--only", type=_name_list, default=None, metavar="NAMES",
                   help=f"comma-separated subset of {', '.join(BENCH_MODULES)}")
    p.add_argument("--threads", type=_int_list, default=[1, 2], help="thread counts (default 1,2)")
    p.add_argument("--quick", action="store_true", help="short timings (for a smoke test)")
    p.add_argument("--out", default=None, metavar="FILE", help="write every row as JSON")
    p.set_defaults(handler=cmd_bench)

    # info
    p = sub.add_parser("info", help="version, compiler, SIMD, OpenMP, threads, optional extras",
                       description="Print il.info(), the optional extras found, the initializers and the "
                                   "built-in data sets.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(handler=cmd_info)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the runs execute")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="kernel threads per run (default: 1 for small networks, where threads do not "
                        "pay off, else the cores divided by the workers)")
    g.add_argument("--workers", type=_positive_int, default=None,
                   help="run the grid on N local processes (or N Dask workers with --scheduler local)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the grid on a Dask cluster: 'local' starts a LocalCluster on 127.0.0.1, "
                        "otherwise a scheduler address such as tcp://host:8786 (needs initlab[distributed])")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def _version() -> str:
    try:
        from . import __version__
        return f"initlab {__version__}"
    except Exception:  # noqa: BLE001 - the version must print even with a broken build
        return "initlab (version unknown: the native core is not importable)"


def _progress(args) -> Optional[bool]:
    return False if getattr(args, "no_progress", False) else None


def _pick(value, default):
    return default if value is None else value


def _hidden_widths(args, default_depth: int, default_width: int) -> List[int]:
    """The hidden widths from --hidden or --depth/--width (the same in every command)."""
    if args.layers is not None:
        raise CommandError(f"--layers is gone: give the hidden widths with --hidden, e.g. --hidden 256,128 "
                           f"(the input and output widths come from the data), got --layers {args.layers}")
    if args.hidden is not None:
        if args.depth is not None or args.width is not None:
            raise CommandError("give either --hidden or --depth/--width, not both")
        return list(args.hidden)
    return [_pick(args.width, default_width)] * _pick(args.depth, default_depth)


def _fit_options(args, defaults: Dict[str, Any]) -> Dict[str, Any]:
    """The training options shared by compare and train, as fit / experiments.compare take them."""
    optimizer = _pick(args.optimizer, defaults["optimizer"])
    options = dict(batch_size=_pick(args.batch_size, defaults["batch_size"]), optimizer=optimizer,
                   lr=_pick(args.lr, defaults["lr"]),
                   momentum=_pick(args.momentum, defaults["momentum"]) if optimizer in takes("momentum") else 0.0,
                   weight_decay=_pick(args.weight_decay, 0.0), clip_norm=args.clip_norm, clip_value=args.clip_value)
    if args.lr_schedule is not None:
        from .nn.network import Network
        if "lr_schedule" not in inspect.signature(Network.fit).parameters:
            raise CommandError("--lr-schedule: this initlab's Network.fit takes no learning-rate schedule yet")
        options["lr_schedule"] = args.lr_schedule
    return options


def _describe_training(options: Dict[str, Any], dropout: float, bias_init: str) -> str:
    extras = [f"{name.replace('_', ' ')} {options[name]}" for name in ("weight_decay", "clip_norm", "clip_value")
              if options.get(name)]
    if dropout:
        extras.append(f"dropout {dropout}")
    if bias_init != "zeros":
        extras.append(f"bias init {bias_init}")
    if options.get("lr_schedule") is not None:
        schedule = options["lr_schedule"]
        extras.append("lr schedule " + (schedule if isinstance(schedule, str) else
                                        f"{schedule[0]}({', '.join(f'{k}={v}' for k, v in schedule[1].items())})"))
    return "".join(", " + extra for extra in extras)


# ---- commands ---------------------------------------------------------------------------------

TRAINING_FLAGS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "dropout", "clip_norm",
                  "clip_value", "bias_init", "lr_schedule")


def cmd_compare(args) -> int:
    from .experiments.record import SweepInterrupted
    if args.resume and not args.out:
        raise CommandError("--resume needs --out DIR (the folder of the sweep to resume)")
    try:
        return _compare(args)
    except SweepInterrupted as stop:
        print(f"\ninitlab compare: interrupted; {stop.done} of {stop.total} runs are recorded in {stop.path}. "
              "Run the same command with --resume to finish the sweep.", file=sys.stderr)
        return 130


def _compare(args) -> int:
    from . import experiments
    if args.preset is not None:
        fixed = [name for name in ("data", "depth", "width", "hidden", "layers", "activation", "inits",
                                   *TRAINING_FLAGS, "seeds", "target_accuracy", "max_samples")
                 if getattr(args, name) is not None]
        if fixed:
            raise CommandError(f"--preset {args.preset} fixes its data, network and training; drop "
                               + ", ".join("--" + name.replace("_", "-") for name in fixed))
        preset = experiments.PRESETS[args.preset]
        print(f"{preset.title}\n{preset.description}{' (reduced size)' if args.reduced else ''}\n")
        started = time.perf_counter()
        result = experiments.run_preset(args.preset, reduced=args.reduced, workers=args.workers,
                                        scheduler=args.scheduler, threads=args.threads,
                                        progress=_progress(args), out=args.out, resume=args.resume)
    else:
        if args.reduced:
            raise CommandError("--reduced only applies with --preset")
        d = experiments.DEFAULTS
        images = _pick(args.data, d["data"]) == "digits-images"
        if images and args.hidden is None and args.depth is None and args.width is None and args.layers is None:
            from .experiments.compare import CNN_CHANNELS
            hidden = list(CNN_CHANNELS)  # image data trains a small CNN: these are its channels
        else:
            hidden = _hidden_widths(args, d["depth"], d["width"])
        options = _fit_options(args, d)
        dropout, bias_init = _pick(args.dropout, 0.0), _pick(args.bias_init, "zeros")
        started = time.perf_counter()
        result = experiments.compare(
            _pick(args.data, d["data"]), inits=_pick(args.inits, d["inits"]), hidden=hidden,
            activation=_pick(args.activation, d["activation"]), seeds=_pick(args.seeds, d["seeds"]),
            epochs=_pick(args.epochs, d["epochs"]), target_accuracy=_pick(args.target_accuracy, d["target_accuracy"]),
            threads=args.threads, workers=args.workers, scheduler=args.scheduler, progress=_progress(args),
            max_samples=args.max_samples, dropout=dropout, bias_init=bias_init, out=args.out,
            resume=args.resume, **options)
        c = result.config
        shape = (f"{len(hidden)} x {hidden[0]}" if len(set(hidden)) == 1 else "hidden " + ",".join(map(str, hidden)))
        if images:
            shape = "CNN of 3x3 convolutions with channels " + ",".join(map(str, hidden)) + ", Flatten,"
        print(f"data {c['data']['name']}: {c['data']['train']} train / {c['data']['validation']} validation "
              f"samples, {c['data']['features']} features, {c['data']['classes']} classes; network "
              f"{shape} {c['activation']}, {c['optimizer']} lr {c['lr']} momentum "
              f"{c['momentum']}, batch {c['batch_size']}, {c['epochs']} epochs"
              f"{_describe_training(options, dropout, bias_init)}\n")
    print(result.table(), end="")
    if args.preset is None and any(len(row["seeds"]) > 1 for row in result.summary_by_init()):
        print("\nover the seeds (mean ± sample std):")
        print(result.seed_table(), end="")
    if result.claims:
        print("\nclaims, checked on these runs:")
        print(result.claims_table(), end="")
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.out:
        paths = result.save(args.out, figures=_have_matplotlib())
        if not _have_matplotlib():
            print("(no figures: matplotlib is not installed; pip install 'initlab[plot]')")
        print(f"wrote {len(paths)} files to {args.out}: " + ", ".join(os.path.basename(p) for p in paths))
    return 0


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _diagnose_batch(args, input_dim: int):
    if args.data is None:
        X = np.random.default_rng(args.seed).standard_normal((args.samples, input_dim)).astype(np.float32)
        return X, None, "N(0, 1) noise"
    from .experiments import prepare_data
    data = prepare_data(args.data, max_samples=None)
    if data.features != input_dim:
        raise CommandError(f"--data {args.data} has {data.features} features, the network takes {input_dim}")
    n = min(args.samples, data.X_train.shape[0])
    return data.X_train[:n], data.y_train[:n], f"{n} standardized rows of {args.data}"


def _load_model(path: str):
    from . import Network
    try:
        return Network.load(path)
    except FileNotFoundError:
        raise CommandError(f"--model {path}: no such file") from None
    except ValueError as e:
        if "allow_pickle" in str(e) or "not a readable" in str(e) or "not an .npz" in str(e):
            raise CommandError(f"--model {path}: not an initlab model (a model is the .npz file that "
                               f"`initlab train --out` or Network.save writes)") from None
        raise


def cmd_diagnose(args) -> int:
    from . import Network
    if args.model is not None:
        given = [flag for flag, value in (("--hidden", args.hidden), ("--layers", args.layers), ("--depth", args.depth),
                                          ("--width", args.width), ("--activation", args.activation),
                                          ("--init", args.init)) if value is not None]
        if given:
            raise CommandError(f"--model already fixes the network; drop {', '.join(given)}")
        net = _load_model(args.model)
    else:
        hidden = _hidden_widths(args, 10, 256)
        input_dim, classes = 64, 10
        if args.data is not None:
            from .experiments import prepare_data
            data = prepare_data(args.data)
            input_dim, classes = data.features, data.classes
        net = Network([input_dim] + hidden + [classes], activation=_pick(args.activation, "relu"), output="softmax",
                      init=_pick(args.init, "he_normal"), seed=args.seed)
    X, y, where = _diagnose_batch(args, net.input_dim)
    if y is not None and y.max() >= net.output_dim:
        y = None  # labels the network cannot take: diagnose from a random output gradient instead
    diagnosis = net.diagnose(X, y)
    if args.json:
        from .inspect.report import _json_safe
        print(json.dumps(_json_safe(diagnosis.to_dict()), indent=1))
    else:
        print(f"network {net.widths}, activation {net.layers[0].activation if len(net.layers) > 1 else '-'}, "
              f"init {net.layers[0].init_name}; batch: {where}\n")
        print(str(diagnosis), end="")
    return 0


def cmd_train(args) -> int:
    from . import Network, set_num_threads
    from .experiments import DEFAULTS, prepare_data, suggest_threads
    data = prepare_data(_pick(args.data, "digits"), max_samples=args.max_samples)
    hidden = _hidden_widths(args, 2, 128)
    widths = [data.features] + hidden + [data.classes]
    options = _fit_options(args, DEFAULTS)
    dropout, bias_init = _pick(args.dropout, 0.0), _pick(args.bias_init, "zeros")
    set_num_threads(args.threads if args.threads is not None else suggest_threads(widths, options["batch_size"]))
    net = Network(widths, activation=_pick(args.activation, "relu"), output="softmax",
                  init=_pick(args.init, "he_normal"), bias_init=bias_init, dropout=dropout, seed=args.seed)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    print(f"network {widths}, {net.layers[0].activation if len(net.layers) > 1 else 'linear'}, init "
          f"{net.layers[0].init_name}; data {data.name}: {data.X_train.shape[0]} train / "
          f"{data.X_val.shape[0]} validation samples; {options['optimizer']} lr {options['lr']}"
          f"{_describe_training(options, dropout, bias_init)}\n")
    report = net.fit(data.X_train, data.y_train, epochs=_pick(args.epochs, 20),
                     validation_data=(data.X_val, data.y_val), **options)
    print(str(report), end="")
    final = net.evaluate(data.X_val, data.y_val)
    print(f"\nvalidation: loss {final['loss']:.4f}, accuracy {final['accuracy']:.2%}")
    if args.out:
        written = [net.save(os.path.join(args.out, "model.npz")),
                   report.to_json(os.path.join(args.out, "report.json")),
                   report.to_csv(os.path.join(args.out, "history.csv")),
                   report.to_csv(os.path.join(args.out, "layer_stats.csv"), "layer_stats")]
        if _have_matplotlib():
            written.append(report.plot(os.path.join(args.out, "report.png")))
        print(f"wrote {', '.join(os.path.basename(os.fspath(p)) for p in written)} to {args.out}")
    return 0


def cmd_bench(args) -> int:
    names = args.only or list(BENCH_MODULES)
    unknown = [n for n in names if n not in BENCH_MODULES]
    if unknown:
        raise CommandError(f"--only: unknown benchmark(s) {', '.join(unknown)}; valid: {', '.join(BENCH_MODULES)}")
    all_rows: Dict[str, Any] = {}
    unavailable = []
    for name in names:
        try:
            module = importlib.import_module(f"initlab.bench.{name}")
        except ImportError as exc:
            unavailable.append(name)
            print(f"initlab.bench.{name}: unavailable ({exc})", file=sys.stderr)
            continue
        run = module.run
        kwargs: Dict[str, Any] = {"threads": tuple(args.threads)}
        if args.quick:
            accepted = inspect.signature(run).parameters
            kwargs.update({k: v for k, v in QUICK_ARGUMENTS.get(name, {}).items() if k in accepted})
        print(f"== initlab.bench.{name} (threads {', '.join(map(str, args.threads))})")
        rows = run(**kwargs)
        print(module.format_table(rows))
        all_rows[name] = rows
    if args.out and all_rows:
        from .experiments.compare import _write_text
        from .inspect.report import _json_safe
        _write_text(args.out, json.dumps(_json_safe(all_rows), indent=1, default=str) + "\n")
        print(f"wrote {args.out}")
    if not all_rows:
        raise CommandError(f"no benchmark module is available ({', '.join(unavailable)})")
    return 0


def _extras() -> Dict[str, Optional[str]]:
    """Installed versions of the packages initlab can use (read from metadata: nothing imported)."""
    from importlib import metadata
    found: Dict[str, Optional[str]] = {}
    for package in ("numpy", "tqdm", "matplotlib", "torch", "dask", "distributed"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def cmd_info(args) -> int:
    import initlab as il
    from . import datasets, experiments
    info = dict(il.info())
    extras = _extras()
    try:
        inits = list(il.init.names())
    except AttributeError:
        inits = []
    if args.json:
        print(json.dumps({"info": info, "python": sys.version.split()[0], "packages": extras,
                          "initializers": inits, "datasets": list(datasets.BUILTIN),
                          "presets": list(experiments.PRESETS)}, indent=1))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.ljust(width)}  {value}")
    print(f"{'python'.ljust(width)}  {sys.version.split()[0]}")
    print("\noptional packages: " + ", ".join(f"{k} {v}" if v else f"{k} (not installed)" for k, v in extras.items()))
    print("initializers: " + ", ".join(inits + ["lsuv"]))
    print("data sets: " + ", ".join(datasets.BUILTIN))
    print("presets: " + ", ".join(experiments.PRESETS))
    return 0


# ---- entry point ------------------------------------------------------------------------------

def _silence_closed_stdout() -> None:
    """After EPIPE on stdout (the reader, e.g. `head`, has exited): point the stdout descriptor at
    /dev/null, so that the interpreter's flush at exit writes nowhere instead of failing again
    ("Exception ignored ... BrokenPipeError" and status 120). What the reader did not take is lost,
    as with any Unix tool whose reader has gone."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured in tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it).

    A closed stdout (``initlab info --json | head -3``) ends quietly with status 0, as other Unix
    tools do when their reader stops reading."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        status = _run_command(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return status
    except BrokenPipeError:
        _silence_closed_stdout()
        return 0


def _run_command(args) -> int:
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        print(f"initlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, OSError, ImportError, FloatingPointError) as exc:
        if os.environ.get("INITLAB_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"initlab {args.command}: error: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug, still reported as one line
        if os.environ.get("INITLAB_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        print(f"initlab {args.command}: internal error: {type(exc).__name__}: {message} "
              "(set INITLAB_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
