"""Learning-rate schedules for ``Network.fit(lr_schedule=...)``: one learning rate per epoch.

A schedule is given as

- ``None`` or ``"constant"``: ``lr`` every epoch;
- ``("step", {"step_size": s, "gamma": 0.1})``: ``torch.optim.lr_scheduler.StepLR``;
- ``("exponential", {"gamma": g})``: ``ExponentialLR``;
- ``("cosine", {"T_max": epochs, "eta_min": 0.0})``: ``CosineAnnealingLR`` (``T_max`` defaults to the
  fit's ``epochs``);
- ``("warmup", {"epochs": k})``: ``lr * (e + 1) / k`` for ``e < k``, then ``lr``;
- a callable ``epoch -> lr``;
- or the command-line form of any named one, ``"cosine(T_max=30)"``, ``"step(step_size=10,gamma=0.5)"``
  (``parse_schedule``).

``epoch`` counts from 0 at the start of every ``fit`` call. The torch schedules are evaluated with
torch's own recurrences (each epoch's lr computed from the previous one, as ``scheduler.step()`` once
per epoch does), so the values are torch's to the last bit in float64, not just its closed forms.
Everything is checked before training starts: ``schedule_values`` computes (and checks) the lr of every
epoch of the fit, a callable included, so a bad value is an error before any weight changes.

>>> schedule_values(("step", {"step_size": 2, "gamma": 0.5}), 0.1, 5)
[0.1, 0.1, 0.05, 0.05, 0.025]
>>> parse_schedule("cosine(T_max=30)")
('cosine', {'T_max': 30})
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

__all__ = ["SCHEDULES", "ScheduleSpec", "check_schedule", "describe_schedule", "parse_schedule",
           "schedule_values"]

ScheduleSpec = Union[None, str, Tuple[str, Mapping[str, Any]], Callable[[int], float]]


class _Param(NamedTuple):
    kind: str          # "int" (>= minimum) or "float" (finite, >= minimum)
    minimum: float
    default: Any       # _REQUIRED, _EPOCHS (the fit's epochs) or a value


_REQUIRED = object()
_EPOCHS = object()


# ---- the recurrences, one per named schedule: lr of epoch e from the lr of epoch e - 1 -------------
def _constant(lr: float, n_epochs: int, /) -> List[float]:
    return [lr] * n_epochs


def _step(lr: float, n_epochs: int, /, step_size: int, gamma: float) -> List[float]:
    # StepLR.get_lr: multiply by gamma at every non-zero multiple of step_size
    values = []
    for e in range(n_epochs):
        if e > 0:
            lr = lr * gamma if e % step_size == 0 else lr
        values.append(lr)
    return values


def _exponential(lr: float, n_epochs: int, /, gamma: float) -> List[float]:
    # ExponentialLR.get_lr: lr * gamma every step
    values = []
    for e in range(n_epochs):
        if e > 0:
            lr = lr * gamma
        values.append(lr)
    return values


def _cosine(lr: float, n_epochs: int, /, T_max: int, eta_min: float) -> List[float]:
    # CosineAnnealingLR.get_lr, its recursive form term by term (base_lr is the fit's lr)
    base_lr, values = lr, []
    for e in range(n_epochs):
        if e == 0:
            pass
        elif (e - 1 - T_max) % (2 * T_max) == 0:  # the step past a minimum: the ratio below is 0/0
            lr = lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        else:
            lr = ((1 + math.cos(math.pi * e / T_max)) / (1 + math.cos(math.pi * (e - 1) / T_max))
                  * (lr - eta_min) + eta_min)
        values.append(lr)
    return values


def _warmup(lr: float, n_epochs: int, /, epochs: int) -> List[float]:
    # linear from lr/k up to lr over the first k = `epochs` epochs
    return [lr * (e + 1) / epochs if e < epochs else lr for e in range(n_epochs)]


# name -> (recurrence, parameters); the one table that validation, docs and errors read
SCHEDULES: Dict[str, Tuple[Callable[..., List[float]], Dict[str, _Param]]] = {
    "constant": (_constant, {}),
    "step": (_step, {"step_size": _Param("int", 1, _REQUIRED), "gamma": _Param("float", 0.0, 0.1)}),
    "exponential": (_exponential, {"gamma": _Param("float", 0.0, _REQUIRED)}),
    "cosine": (_cosine, {"T_max": _Param("int", 1, _EPOCHS), "eta_min": _Param("float", 0.0, 0.0)}),
    "warmup": (_warmup, {"epochs": _Param("int", 1, _REQUIRED)}),
}


def _forms() -> str:
    return ("None, 'constant', ('step', {'step_size': s, 'gamma': 0.1}), ('exponential', {'gamma': g}), "
            "('cosine', {'T_max': epochs, 'eta_min': 0.0}), ('warmup', {'epochs': k}), "
            "a callable epoch -> lr, or 'name(key=value, ...)'")


def _check_param(name: str, key: str, spec: _Param, value: Any, argname: str) -> Union[int, float]:
    where = f"{argname} {name!r}: parameter {key!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    value = float(value) if spec.kind == "float" else value
    if spec.kind == "int":
        if not isinstance(value, numbers.Integral):
            if not (math.isfinite(value) and float(value).is_integer()):
                raise ValueError(f"{where} must be an integer >= {int(spec.minimum)}, got {value!r}")
        value = int(value)
    if not (math.isfinite(value) and value >= spec.minimum):
        bound = int(spec.minimum) if spec.kind == "int" else spec.minimum
        raise ValueError(f"{where} must be {'an integer' if spec.kind == 'int' else 'finite and'} "
                         f">= {bound}, got {value!r}")
    return value


class _Checked(NamedTuple):
    name: str                      # a SCHEDULES name, or "callable"
    params: Dict[str, Any]         # given parameters, checked (defaults not filled in)
    fn: Optional[Callable[[int], Any]]


def check_schedule(lr_schedule: ScheduleSpec, argname: str = "lr_schedule") -> _Checked:
    """The schedule's name and checked parameters; raises TypeError / ValueError naming `argname`."""
    if lr_schedule is None:
        return _Checked("constant", {}, None)
    if isinstance(lr_schedule, str):
        if "(" in lr_schedule:
            lr_schedule = parse_schedule(lr_schedule, argname)
        else:
            lr_schedule = (lr_schedule, {})
    elif callable(lr_schedule):
        return _Checked("callable", {}, lr_schedule)
    if not (isinstance(lr_schedule, (tuple, list)) and len(lr_schedule) == 2
            and isinstance(lr_schedule[0], str) and isinstance(lr_schedule[1], Mapping)):
        raise TypeError(f"{argname} must be one of {_forms()}; got {type(lr_schedule).__name__} "
                        f"{lr_schedule!r}")
    name, given = lr_schedule[0], dict(lr_schedule[1])
    if name not in SCHEDULES:
        raise ValueError(f"{argname}: unknown schedule {name!r}; valid: {', '.join(SCHEDULES)} "
                         f"(or a callable epoch -> lr)")
    table = SCHEDULES[name][1]
    for key in given:
        if key not in table:
            raise ValueError(f"{argname} {name!r}: unknown parameter {key!r}; valid: "
                             f"{', '.join(table) or 'none'}")
    for key, spec in table.items():
        if key in given:
            given[key] = _check_param(name, key, spec, given[key], argname)
        elif spec.default is _REQUIRED:
            raise ValueError(f"{argname} {name!r}: parameter {key!r} is required, as in "
                             f"({name!r}, {{{key!r}: ...}}) or '{name}({key}=...)'; "
                             f"got {dict(lr_schedule[1])!r}")
    return _Checked(name, given, None)


def _check_value(value: Any, epoch: int, argname: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argname}: the callable returned {type(value).__name__} {value!r} for epoch "
                        f"{epoch}; it must return a number (the learning rate)")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{argname}: the callable returned {value!r} for epoch {epoch}; a learning "
                         f"rate must be finite and >= 0")
    return value


def _call(fn: Callable[[int], Any], epoch: int, argname: str) -> Any:
    """fn(epoch); what the user's callable raises comes back as a TypeError (a wrong signature) or
    ValueError naming the argument and the epoch, the original chained."""
    try:
        return fn(epoch)
    except TypeError as e:
        raise TypeError(f"{argname}: calling it with epoch={epoch} raised TypeError: {e} (a schedule "
                        f"callable takes the epoch, counted from 0, and returns the lr)") from e
    except Exception as e:  # noqa: BLE001 - any failure of user code is a bad lr_schedule
        raise ValueError(f"{argname}: calling it with epoch={epoch} raised {type(e).__name__}: {e}") from e


def schedule_values(lr_schedule: ScheduleSpec, lr: float, epochs: int,
                    argname: str = "lr_schedule") -> List[float]:
    """The learning rate of each epoch ``0 .. epochs - 1`` of one fit, every value checked.

    ``lr`` is the fit's learning rate (the schedules' base_lr); a callable is called once per epoch,
    here, before training starts.
    """
    checked = check_schedule(lr_schedule, argname)
    if checked.fn is not None:
        return [_check_value(_call(checked.fn, e, argname), e, argname) for e in range(epochs)]
    recurrence, table = SCHEDULES[checked.name]
    params = {}
    for key, spec in table.items():
        if key in checked.params:
            params[key] = checked.params[key]
        else:
            params[key] = epochs if spec.default is _EPOCHS else spec.default
    if checked.name == "cosine" and params["T_max"] < 1:  # T_max defaulted to epochs = 0
        return []
    return [float(v) for v in recurrence(float(lr), epochs, **params)]


def describe_schedule(lr_schedule: ScheduleSpec, argname: str = "lr_schedule") -> str:
    """The command-line form of a schedule (``"cosine(T_max=30)"``), or a callable's name."""
    checked = check_schedule(lr_schedule, argname)
    if checked.fn is not None:
        return getattr(checked.fn, "__name__", type(checked.fn).__name__)
    if not checked.params:
        return checked.name
    return f"{checked.name}({','.join(f'{k}={v!r}' for k, v in checked.params.items())})"


_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_ITEM = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(\S+?)\s*$")


def parse_schedule(text: str, argname: str = "lr_schedule") -> ScheduleSpec:
    """``"cosine(T_max=30)"`` -> ``("cosine", {"T_max": 30})``; ``"constant"`` -> ``"constant"``.

    Values are numbers (an integer literal stays an int). The name and the parameters are checked
    as ``fit`` checks them; errors name `argname` (the CLI passes ``"--lr-schedule"``).
    """
    if not isinstance(text, str):
        raise TypeError(f"{argname} must be a string like 'cosine(T_max=30)', got {type(text).__name__}")
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"{argname}: cannot read {text!r}; write NAME or NAME(key=value, ...), "
                         f"for example 'step(step_size=10,gamma=0.5)'")
    name, body = match.group(1), match.group(2)
    params: Dict[str, Any] = {}
    if body is not None and body.strip():
        for item in body.split(","):
            kv = _ITEM.match(item)
            if kv is None:
                raise ValueError(f"{argname}: cannot read {item.strip()!r} in {text!r}; parameters are "
                                 f"key=value separated by commas")
            key, raw = kv.group(1), kv.group(2)
            if key in params:
                raise ValueError(f"{argname}: parameter {key!r} given twice in {text!r}")
            try:
                params[key] = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)
            except ValueError:
                raise ValueError(f"{argname}: parameter {key!r} must be a number, got {raw!r} "
                                 f"in {text!r}") from None
    spec: ScheduleSpec = (name, params) if body is not None else name
    check_schedule(spec if body is not None else (name, {}), argname)
    return spec
