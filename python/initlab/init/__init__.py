"""Weight initializers: every scheme of PyTorch, Keras and JAX, computed by initlab's C++ core.

Each scheme exists as ``NAME(shape, *, dtype="float32", seed=None, stream=0, layout="in_out",
**params)`` (a new C-contiguous array) and ``NAME_(array, *, seed=None, stream=0, layout="in_out",
**params)`` (fills a writable C-contiguous float32/float64 array in place and returns it). Both forms
also take ``fan_in=`` / ``fan_out=`` to override the fans computed from the shape.

Layouts: ``"in_out"`` is ``(*receptive, fan_in, fan_out)`` (Keras/JAX kernels, ``Dense.W``);
``"out_in"`` is ``(fan_out, fan_in, *receptive)`` (PyTorch). Fans multiply by the receptive field.

Randomness: element i depends only on ``(seed, stream, i, params)`` (Philox4x32-10, see
:mod:`initlab.random` for the exact mapping), so results are bitwise identical on any thread count.
``seed=None`` draws a fresh 64-bit seed from the OS.

All schemes, their aliases, parameters and documentation come from one table, :data:`SCHEMES`.

>>> import initlab as il
>>> W = il.init.he_normal((256, 128), seed=0)      # (fan_in, fan_out), std sqrt(2/256)
>>> W.dtype, W.shape
(dtype('float32'), (256, 128))
>>> b = il.init.he_uniform((128,), seed=0, fan_in=256)   # a bias with its layer's fans
"""
from __future__ import annotations

import inspect
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .random import check_seed, fresh_seed

__all__ = ["SCHEMES", "Scheme", "gain", "estimate_gain", "fans", "get", "names", "aliases", "plan",
           "parse_spec", "format_spec", "split_specs"]

REQUIRED = inspect.Parameter.empty  # a parameter without a default
_WORD_PARAMS = ("mode", "nonlinearity", "distribution")  # passed as strings, the rest as numbers


@dataclass(frozen=True)
class Scheme:
    """One row of the registry: everything the functions, docs, tests and errors read."""

    name: str
    aliases: Tuple[str, ...]
    params: Tuple[Tuple[str, Any], ...]  # (name, default or REQUIRED), in signature order
    distribution: str  # the formula, as API.md's table writes it
    paper: str
    random: bool
    uses_fans: bool  # needs ndim >= 2 unless fan_in= / fan_out= are given
    example_shape: Tuple[int, ...] = (256, 128)
    example_params: str = ""


SCHEMES: Tuple[Scheme, ...] = (
    Scheme("zeros", (), (), "0", "", False, False),
    Scheme("ones", (), (), "1", "", False, False),
    Scheme("constant", (), (("value", REQUIRED),), "value", "", False, False,
           example_params=", value=0.1"),
    Scheme("uniform", (), (("low", -0.05), ("high", 0.05)), "U(low, high)", "", True, False),
    Scheme("normal", (), (("mean", 0.0), ("std", 0.05)), "N(mean, std^2)", "", True, False),
    Scheme("truncated_normal", (), (("mean", 0.0), ("std", 0.05), ("a", -2.0), ("b", 2.0)),
           "N(mean, std^2) restricted to [mean + a*std, mean + b*std] (a, b in units of std), "
           "by the inverse CDF", "", True, False),
    Scheme("small_random", (), (("scale", 0.01),), "scale * N(0, 1)",
           "the classic small random initialization", True, False),
    Scheme("xavier_uniform", ("glorot_uniform",), (("gain", 1.0),),
           "U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out))",
           "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward "
           "neural networks", True, True),
    Scheme("xavier_normal", ("glorot_normal",), (("gain", 1.0),),
           "N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))",
           "Glorot & Bengio 2010", True, True),
    Scheme("he_uniform", ("kaiming_uniform",),
           (("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")),
           "U(-bound, bound), bound = gain(nonlinearity, a) * sqrt(3 / fan), fan = fan_in or fan_out",
           "He et al. 2015, Delving deep into rectifiers", True, True),
    Scheme("he_normal", ("kaiming_normal",),
           (("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")),
           "N(0, std^2), std = gain(nonlinearity, a) / sqrt(fan), fan = fan_in or fan_out",
           "He et al. 2015, Delving deep into rectifiers", True, True),
    Scheme("lecun_uniform", (), (), "U(-bound, bound), bound = sqrt(3 / fan_in)",
           "LeCun et al. 1998, Efficient BackProp", True, True),
    Scheme("lecun_normal", (), (), "N(0, 1 / fan_in)", "LeCun et al. 1998, Efficient BackProp",
           True, True),
    Scheme("variance_scaling", (),
           (("scale", 1.0), ("mode", "fan_in"), ("distribution", "truncated_normal")),
           "variance = scale / max(1, fan), fan from mode in fan_in/fan_out/fan_avg/fan_geo_avg; "
           "distribution normal: N(0, variance); uniform: U(+-sqrt(3 variance)); "
           "truncated_normal: N(0, s^2) on [-2s, 2s] with s = sqrt(variance) / 0.87962566103423978 "
           "(Keras/JAX semantics: the truncated variance is scale / fan)",
           "Keras/JAX VarianceScaling", True, True),
    Scheme("torch_default", ("standard_uniform",), (),
           "U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's nn.Linear default "
           "(kaiming_uniform_(a=sqrt(5)))", "Glorot & Bengio 2010 ('standard' initialization)",
           True, True),
    Scheme("orthogonal", (), (("gain", 1.0),),
           "gain * Q, Q (semi-)orthogonal from the QR factorization of a N(0, 1) matrix with the "
           "signs of diag(R); out_in flattens to (shape[0], rest) as PyTorch, in_out to "
           "(rest, shape[-1]) as Keras/JAX",
           "Saxe et al. 2013, Exact solutions to the nonlinear dynamics of learning in deep linear "
           "networks", True, False),
    Scheme("identity", ("eye",), (("gain", 1.0),), "gain * I (2-D only)", "", False, False),
    Scheme("dirac", (), (("groups", 1),),
           "PyTorch's dirac_: identity at the centre tap of a 3/4/5-D convolution kernel, "
           "per group", "", False, False, example_shape=(16, 8, 3, 3)),
    Scheme("delta_orthogonal", (), (("gain", 1.0),),
           "an orthogonal (in, out) matrix times gain at the centre tap, zeros elsewhere "
           "(needs in <= out)",
           "Xiao et al. 2018, Dynamical isometry and a mean field theory of CNNs", True, False,
           example_shape=(3, 3, 16, 32)),
    Scheme("sparse", (), (("sparsity", REQUIRED), ("std", 0.01)),
           "each column of the 2-D array has ceil(sparsity * rows) zeros, the rest N(0, std^2)",
           "Martens 2010, Deep learning via Hessian-free optimization", True, False,
           example_params=", sparsity=0.9"),
)

_BY_NAME: Dict[str, Scheme] = {}
for _scheme in SCHEMES:
    for _name in (_scheme.name,) + _scheme.aliases:
        _BY_NAME[_name] = _scheme


def names() -> List[str]:
    """The sorted canonical scheme names (aliases resolve to these)."""
    return sorted(s.name for s in SCHEMES)


def aliases() -> Dict[str, str]:
    """``{alias: canonical name}`` for every alias."""
    return {a: s.name for s in SCHEMES for a in s.aliases}


def _unknown_name(name: object) -> ValueError:
    valid = ", ".join(sorted(_BY_NAME))
    return ValueError(f"unknown initializer {name!r}; valid names: {valid}")


def scheme(name: str) -> Scheme:
    """The registry row of a name or alias."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise _unknown_name(name)
    return _BY_NAME[name]


# ---- argument parsing --------------------------------------------------------------------------
def _parse_shape(shape: object, who: str) -> Tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)):  # iterable, but not a shape (b"x" would be (120,))
        raise TypeError(f"{who}: shape must be an int or a tuple of ints, got {type(shape).__name__}")
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{who}: shape must be an int or a tuple of ints, got "
                        f"{type(shape).__name__}") from None
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{who}: shape must hold ints, got {shape!r}")
        if d < 0:
            raise ValueError(f"{who}: shape entries must be >= 0, got {shape!r}")
        if d >= 2**63:  # the core's sizes are int64 (numpy's too)
            raise ValueError(f"{who}: shape entries must be < 2**63, got {shape!r}")
        out.append(int(d))
    return tuple(out)


def _parse_dtype(dtype: object, who: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)  # type: ignore[arg-type]
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{who}: dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _parse_layout(layout: object, who: str) -> str:
    if layout not in ("in_out", "out_in"):
        raise ValueError(f"{who}: layout must be 'in_out' or 'out_in', got {layout!r}")
    return layout  # type: ignore[return-value]


def _parse_fan(value: object, name: str, who: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: {name} must be a number > 0, got {type(value).__name__}")
    if not (math.isfinite(float(value)) and value > 0):
        raise ValueError(f"{who}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _parse_params(sch: Scheme, who: str, params: Dict[str, Any]) -> Tuple[Dict[str, float], Dict[str, str]]:
    allowed = dict(sch.params)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        listed = ", ".join(allowed) or "none"
        raise TypeError(f"{who}: unexpected parameter(s) {', '.join(unknown)}; "
                        f"{sch.name} takes: {listed}")
    numbers: Dict[str, float] = {}
    words: Dict[str, str] = {}
    for name, default in sch.params:
        value = params.get(name, default)
        if value is REQUIRED:
            raise TypeError(f"{who}: missing required parameter {name}")
        if name in _WORD_PARAMS:
            if not isinstance(value, str):
                raise TypeError(f"{who}: {name} must be a string, got {type(value).__name__}")
            words[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{who}: {name} must be a number, got {type(value).__name__}")
            if not math.isfinite(float(value)):
                raise ValueError(f"{who}: {name} must be a finite number, got {value!r}")
            numbers[name] = float(value)
    return numbers, words


def physical_memory() -> int:
    """Bytes of physical memory (2**63 - 1 where the OS does not say)."""
    try:
        return min(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), 2**63 - 1)
    except (ValueError, OSError, AttributeError):
        return 2**63 - 1


def _check_memory(shape: Tuple[int, ...], dtype: np.dtype, who: str) -> None:
    """MemoryError before allocating more than this machine has (np.empty could over-commit)."""
    nbytes = math.prod(shape) * dtype.itemsize
    physical = physical_memory()
    if nbytes > physical:
        raise MemoryError(f"{who}: shape {shape} in {dtype.name} needs {nbytes} bytes, more than "
                          f"this machine's {physical} bytes of memory")


# ---- orthogonal: QR in numpy (DESIGN.md), the Gaussian matrix from the core -------------------
def _orthogonal_matrix(rows: int, cols: int, seed: int, stream: int) -> np.ndarray:
    gaussian = np.empty((rows, cols), dtype=np.float64)
    _core.random_fill(gaussian, "normal", seed, stream, [0.0, 1.0])
    tall = gaussian if rows >= cols else gaussian.T
    q, r = np.linalg.qr(tall)  # q is (max, min) with orthonormal columns
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0  # Saxe et al.'s sign correction makes Q Haar-distributed
    q = q * signs
    return q if rows >= cols else q.T


def _finish_orthogonal(array: np.ndarray, plan: dict, layout: str, seed: int, stream: int) -> None:
    shape = array.shape
    if array.size == 0:
        return
    if plan["kind"] == "orthogonal":
        if layout == "out_in":  # PyTorch: (shape[0], prod(rest))
            rows = shape[0]
            cols = array.size // rows
        else:  # Keras/JAX: (prod(shape[:-1]), shape[-1])
            cols = shape[-1]
            rows = array.size // cols
        array[...] = (plan["gain"] * _orthogonal_matrix(rows, cols, seed, stream)).reshape(shape)
        return
    # delta_orthogonal: the same operator in both layouts (the out_in tap is the in_out tap's T).
    if layout == "out_in":
        out_ch, in_ch = shape[0], shape[1]
        centre = tuple(k // 2 for k in shape[2:])
        q = _orthogonal_matrix(in_ch, out_ch, seed, stream)  # (in, out), orthonormal rows
        array[...] = 0
        array[(slice(None), slice(None)) + centre] = plan["gain"] * q.T
    else:
        in_ch, out_ch = shape[-2], shape[-1]
        centre = tuple(k // 2 for k in shape[:-2])
        q = _orthogonal_matrix(in_ch, out_ch, seed, stream)
        array[...] = 0
        array[centre] = plan["gain"] * q


# ---- the two generated forms -------------------------------------------------------------------
def _fill(sch: Scheme, array: object, who: str, seed: object, stream: object, layout: object,
          fan_in: object, fan_out: object, params: Dict[str, Any], naive: bool = False) -> np.ndarray:
    layout = _parse_layout(layout, who)
    seed = fresh_seed() if seed is None else check_seed(seed)
    stream = check_seed(stream, "stream")
    fin = _parse_fan(fan_in, "fan_in", who)
    fout = _parse_fan(fan_out, "fan_out", who)
    numbers, words = _parse_params(sch, who, params)
    return _draw(sch, array, who, seed, stream, layout, fin, fout, numbers, words, naive)


def _draw(sch: Scheme, array: object, who: str, seed: int, stream: int, layout: str,
          fin: Optional[float], fout: Optional[float], numbers: Dict[str, float], words: Dict[str, str],
          naive: bool = False) -> np.ndarray:
    """Validated arguments -> one crossing into the core: plan, range check (values the dtype
    cannot hold are refused before anything is written) and the fill."""
    plan = _core.init_fill(array, sch.name, layout, fin, fout, numbers, words, seed, stream, naive, who=who)
    if plan["kind"] in ("orthogonal", "delta_orthogonal"):
        _finish_orthogonal(array, plan, layout, seed, stream)  # type: ignore[arg-type]
    return array  # type: ignore[return-value]


def _plan(sch: Scheme, shape: Tuple[int, ...], who: str, layout: object, fan_in: object,
          fan_out: object, params: Dict[str, Any]) -> dict:
    layout = _parse_layout(layout, who)
    numbers, words = _parse_params(sch, who, params)
    return _core.init_plan(sch.name, list(shape), layout, _parse_fan(fan_in, "fan_in", who),
                           _parse_fan(fan_out, "fan_out", who), numbers, words)


def plan(name: str, shape: Union[int, Sequence[int]], *, layout: str = "in_out",
         fan_in: Optional[float] = None, fan_out: Optional[float] = None, **params: Any) -> dict:
    """What the core will draw for ``name`` on ``shape``: kind, bounds/std and the fans used.

    >>> round(plan("he_normal", (512, 10))["std"] ** 2 * 512, 12)
    2.0
    """
    sch = scheme(name)
    return _plan(sch, _parse_shape(shape, name), name, layout, fan_in, fan_out, params)


def _docstring(sch: Scheme, inplace: bool) -> str:
    params = ", ".join(f"{n}={d!r}" if d is not REQUIRED else n for n, d in sch.params) or "none"
    alias_line = f"Aliases: {', '.join(sch.aliases)}.\n" if sch.aliases else ""
    paper = f"Paper: {sch.paper}.\n" if sch.paper else ""
    shape = sch.example_shape
    seed = ", seed=0" if sch.random else ""
    if inplace:
        head = (f"Fill a writable C-contiguous float32/float64 array in place with {sch.name} "
                f"and return it.")
        example = (f">>> import numpy as np, initlab as il\n"
                   f">>> W = il.init.{sch.name}_(np.empty({shape}, np.float32){seed}"
                   f"{sch.example_params})\n>>> W.shape\n{shape}")
        call = f"{sch.name}_(array, *, seed=None, stream=0, layout='in_out', fan_in=None, fan_out=None, **params)"
    else:
        head = f"A new C-contiguous array of ``shape`` initialized with {sch.name}."
        example = (f">>> import initlab as il\n>>> W = il.init.{sch.name}({shape}{seed}"
                   f"{sch.example_params})\n>>> W.shape, W.dtype.name\n({shape}, 'float32')")
        call = (f"{sch.name}(shape, *, dtype='float32', seed=None, stream=0, layout='in_out', "
                f"fan_in=None, fan_out=None, **params)")
    fans_line = ("Fans: from the shape (ndim >= 2) or fan_in= / fan_out=.\n" if sch.uses_fans
                 else "")
    return (f"{head}\n\n{call}\n\nDistribution: {sch.distribution}.\nParameters: {params}.\n"
            f"{fans_line}{alias_line}{paper}\nExample\n-------\n{example}\n")


def _signature(sch: Scheme, inplace: bool) -> inspect.Signature:
    kw = inspect.Parameter.KEYWORD_ONLY
    first = inspect.Parameter("array" if inplace else "shape", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    common = [] if inplace else [inspect.Parameter("dtype", kw, default="float32")]
    common += [inspect.Parameter("seed", kw, default=None), inspect.Parameter("stream", kw, default=0),
               inspect.Parameter("layout", kw, default="in_out"),
               inspect.Parameter("fan_in", kw, default=None),
               inspect.Parameter("fan_out", kw, default=None)]
    extra = [inspect.Parameter(n, kw, default=d) for n, d in sch.params]
    return inspect.Signature([first] + common + extra, return_annotation=np.ndarray)


def _make_pair(sch: Scheme) -> Tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]:
    def create(shape: Union[int, Sequence[int]], *, dtype: Any = "float32", seed: Optional[int] = None,
               stream: int = 0, layout: str = "in_out", fan_in: Optional[float] = None,
               fan_out: Optional[float] = None, **params: Any) -> np.ndarray:
        who = sch.name
        shp = _parse_shape(shape, who)
        dt = _parse_dtype(dtype, who)
        seed = fresh_seed() if seed is None else check_seed(seed)
        stream = check_seed(stream, "stream")
        layout = _parse_layout(layout, who)
        fin = _parse_fan(fan_in, "fan_in", who)
        fout = _parse_fan(fan_out, "fan_out", who)
        numbers, words = _parse_params(sch, who, params)
        _check_memory(shp, dt, who)  # before np.empty (which could over-commit)
        return _draw(sch, np.empty(shp, dtype=dt), who, seed, stream, layout, fin, fout, numbers, words)

    def fill_(array: np.ndarray, *, seed: Optional[int] = None, stream: int = 0,
              layout: str = "in_out", fan_in: Optional[float] = None,
              fan_out: Optional[float] = None, **params: Any) -> np.ndarray:
        return _fill(sch, array, sch.name + "_", seed, stream, layout, fan_in, fan_out, params)

    for fn, inplace in ((create, False), (fill_, True)):
        fn.__name__ = fn.__qualname__ = sch.name + ("_" if inplace else "")
        fn.__doc__ = _docstring(sch, inplace)
        fn.__signature__ = _signature(sch, inplace)  # type: ignore[attr-defined]
        fn.__module__ = __name__
    return create, fill_


_CREATE: Dict[str, Callable[..., np.ndarray]] = {}
_FILL: Dict[str, Callable[..., np.ndarray]] = {}
for _scheme in SCHEMES:
    _create, _fill_inplace = _make_pair(_scheme)
    for _name in (_scheme.name,) + _scheme.aliases:
        _CREATE[_name] = _create
        _FILL[_name] = _fill_inplace
        globals()[_name] = _create
        globals()[_name + "_"] = _fill_inplace
        __all__ += [_name, _name + "_"]
del _scheme, _name, _create, _fill_inplace


# ---- specs: NAME or NAME(key=value, ...) -----------------------------------------------------
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SPEC = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*\Z", re.DOTALL)


def _split_top_level(text: str, who: str) -> List[str]:
    """``text`` split at the commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{who}: unbalanced ')' in {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ValueError(f"{who}: unclosed {'quote' if quote else '('} in {text!r}")
    parts.append(text[start:])
    return parts


def _parse_value(text: str, key: str, who: str) -> Union[int, float, str]:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value):
            raise ValueError(f"{who}: {key} must be a finite number, got {text!r}")
        return value
    if _IDENT.match(text):  # a word: mode=fan_out, distribution=uniform
        return text
    raise ValueError(f"{who}: {key}={text!r} is neither a number nor a word")


def parse_spec(text: str) -> Tuple[str, Dict[str, Union[int, float, str]]]:
    """``(name, params)`` from ``"NAME"`` or ``"NAME(key=value, ...)"``, the way the command line,
    ``Network(init=...)`` and the experiments write an initializer with parameters.

    Values are numbers (``1``, ``-0.5``, ``1e-3``) or words (``fan_out``, or quoted: ``'fan_out'``).
    The name is a scheme name or alias (or ``NAME_``, the in-place form; ``lsuv`` for networks);
    each key must be one of that scheme's parameters. Errors are ValueErrors that name the
    initializer.

    >>> parse_spec("he_normal(mode=fan_out)")
    ('he_normal', {'mode': 'fan_out'})
    >>> parse_spec("normal(std=1.0, mean=0)")
    ('normal', {'std': 1.0, 'mean': 0})
    """
    if not isinstance(text, str):
        raise TypeError(f"an initializer spec must be a string, got {type(text).__name__}")
    match = _SPEC.match(text)
    if match is None:
        head = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", text)
        who = f"{head.group(1)}: " if head else ""
        raise ValueError(f"{who}initializer spec {text!r} is not NAME or NAME(key=value, ...)")
    name, inner = match.group(1), match.group(2)
    params: Dict[str, Union[int, float, str]] = {}
    if name == "lsuv":
        if inner is not None and inner.strip():
            raise ValueError(f"lsuv: takes no parameters, got {text!r}")
        return name, params
    base = name[:-1] if name.endswith("_") and name[:-1] in _BY_NAME else name
    sch = scheme(base)  # ValueError listing the valid names
    who = sch.name
    if inner is None or not inner.strip():
        return name, params
    allowed = [p for p, _ in sch.params]
    for item in _split_top_level(inner, who):
        if "=" not in item:
            raise ValueError(f"{who}: parameters are written key=value, got {item.strip()!r} in "
                             f"{text!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        if key not in allowed:
            raise ValueError(f"{who}: unknown parameter {key!r} in {text!r}; {who} takes: "
                             f"{', '.join(allowed) or 'no parameters'}")
        if key in params:
            raise ValueError(f"{who}: parameter {key!r} given twice in {text!r}")
        if not value:
            raise ValueError(f"{who}: {key} has no value in {text!r}")
        parsed = _parse_value(value, key, who)
        if (key in _WORD_PARAMS) != isinstance(parsed, str):
            kind = "a word" if key in _WORD_PARAMS else "a number"
            raise ValueError(f"{who}: {key} must be {kind}, got {value!r} in {text!r}")
        params[key] = parsed
    return name, params


def format_spec(name: str, params: Optional[Dict[str, Any]] = None) -> str:
    """The inverse of :func:`parse_spec`: ``format_spec("normal", {"std": 1.0})`` is
    ``"normal(std=1.0)"``; without params just the name."""
    if not params:
        return name
    return f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"


def split_specs(text: str) -> List[str]:
    """A comma-separated list of specs, split at the commas outside parentheses:
    ``split_specs("zeros,normal(std=1.0,mean=0)")`` is ``["zeros", "normal(std=1.0,mean=0)"]``."""
    if not isinstance(text, str):
        raise TypeError(f"split_specs: expected a string, got {type(text).__name__}")
    parts = [part.strip() for part in _split_top_level(text, "initializers")]
    if any(not part for part in parts):
        raise ValueError(f"initializers: empty entry in {text!r}")
    return parts


def _bind(base: Callable[..., np.ndarray], name: str, sch: Scheme,
          params: Dict[str, Any]) -> Callable[..., np.ndarray]:
    """``base`` with ``params`` as new defaults (a call may still override them)."""
    def bound(*args: Any, **kwargs: Any) -> np.ndarray:
        return base(*args, **{**params, **kwargs})

    spec = format_spec(name, params)
    bound.__name__ = bound.__qualname__ = name
    bound.__doc__ = f"{spec}: {base.__name__} with {format_spec('', params)[1:-1]} bound.\n\n" + \
        (base.__doc__ or "")
    signature = inspect.signature(base)
    bound.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
        p.replace(default=params[p.name]) if p.name in params else p
        for p in signature.parameters.values()])
    bound.__module__ = __name__
    bound.spec = spec  # type: ignore[attr-defined]
    bound.scheme = sch.name  # type: ignore[attr-defined]
    bound.params = dict(params)  # type: ignore[attr-defined]
    return bound


def get(name_or_callable: Union[str, Callable[..., np.ndarray]]) -> Callable[..., np.ndarray]:
    """The initializer for a name or alias (``"NAME_"`` gives the in-place form), or for a spec
    with parameters, ``"NAME(key=value, ...)"`` (see :func:`parse_spec`), which returns the
    scheme with those parameters bound; a callable is returned as it is.

    >>> get("glorot_uniform") is get("xavier_uniform")
    True
    >>> float(get("normal(std=2.0)")((4000,), seed=0).std()) > 1.9
    True
    """
    if callable(name_or_callable):
        return name_or_callable
    if isinstance(name_or_callable, str):
        if name_or_callable in _CREATE:
            return _CREATE[name_or_callable]
        if name_or_callable.endswith("_") and name_or_callable[:-1] in _FILL:
            return _FILL[name_or_callable[:-1]]
        if "(" in name_or_callable or name_or_callable != name_or_callable.strip():
            name, params = parse_spec(name_or_callable)
            if name == "lsuv":
                raise _unknown_name(name_or_callable)
            inplace = name not in _CREATE
            base = _FILL[name[:-1]] if inplace else _CREATE[name]
            sch = scheme(name[:-1] if inplace else name)
            if not params:
                return base
            _validate_params(sch, params)
            return _bind(base, name, sch, params)
    raise _unknown_name(name_or_callable)


def _validate_params(sch: Scheme, params: Dict[str, Any]) -> None:
    """Every error a spec's parameters can give, before anything is drawn: the scheme's own checks
    on its example shape (a required parameter may still come with the call)."""
    filled = dict(params)
    for key, default in sch.params:
        if default is REQUIRED and key not in filled:
            return  # the call must pass it; the values given were type-checked by parse_spec
    try:
        _plan(sch, sch.example_shape, sch.name, "in_out", None, None, filled)
    except (TypeError, ValueError) as e:
        message = str(e)
        if not message.startswith(sch.name):
            message = f"{sch.name}: {message}"
        raise ValueError(message) from None


# ---- fans and gains ----------------------------------------------------------------------------
def fans(shape: Union[int, Sequence[int]], layout: str = "in_out") -> Tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape (ndim >= 2), receptive field included.

    ``in_out``: ``(*receptive, fan_in, fan_out)``; ``out_in``: ``(fan_out, fan_in, *receptive)``.

    >>> fans((3, 3, 16, 32)), fans((32, 16, 3, 3), layout="out_in")
    ((144, 288), (144, 288))
    """
    shp = _parse_shape(shape, "fans")
    _parse_layout(layout, "fans")
    if len(shp) < 2:
        raise ValueError(f"fans: shape must have at least 2 dimensions, got {shp}")
    fan_in, fan_out = _core.fans(list(shp), layout)
    return int(fan_in), int(fan_out)


def gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain of a nonlinearity (PyTorch's ``calculate_gain``, extended).

    linear/identity/conv*/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2/(1 + a^2)) with
    a = param or 0.01, selu 3/4 (PyTorch's choice); elu (alpha = param or 1), gelu, softplus and silu:
    the variance-preserving gain 1/sqrt(E[phi(z)^2]), z ~ N(0, 1), the value :func:`estimate_gain`
    computes (elu in closed form, the others to 30 digits).

    >>> gain("relu") == 2 ** 0.5, gain("tanh")
    (True, 1.6666666666666667)
    """
    if not isinstance(nonlinearity, str):
        raise TypeError(f"gain: nonlinearity must be a string, got {type(nonlinearity).__name__}")
    if param is not None:
        if isinstance(param, bool) or not isinstance(param, (int, float, np.integer, np.floating)):
            raise TypeError(f"gain: param must be a number, got {type(param).__name__}")
        param = float(param)
    return _core.gain(nonlinearity, param)


def _activation_table() -> Dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Every activation of the core's registry (its own float64 kernel, default parameter), and
    the two names PyTorch's calculate_gain knows besides: identity and silu."""
    def kernel(name: str) -> Callable[[np.ndarray], np.ndarray]:
        def phi(z: np.ndarray) -> np.ndarray:
            out = np.empty_like(z)
            _core.activation_forward(z.reshape(1, -1), out.reshape(1, -1), name)
            return out
        return phi

    table: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
        a["name"]: kernel(a["name"]) for a in _core.activation_registry()}
    table["identity"] = lambda z: z
    table["silu"] = lambda z: z / (1.0 + np.exp(-z))
    return table


def estimate_gain(activation: Union[str, Callable[[np.ndarray], np.ndarray]]) -> float:
    """1 / sqrt(E[phi(z)^2]) for z ~ N(0, 1): the gain that keeps the forward variance fixed.

    By Gauss-Legendre quadrature (64 nodes on each unit interval of [-12, 12], so kinks at integers,
    like ReLU's at 0, are integrated exactly; accurate to ~1e-13). ``activation`` is a name
    (linear, identity, relu, leaky_relu, elu, selu, gelu, sigmoid, tanh, softplus, silu) or any
    vectorized callable on a float64 array.

    >>> abs(estimate_gain("relu") - 2 ** 0.5) < 1e-12
    True
    """
    table = _activation_table()
    if isinstance(activation, str):
        if activation not in table:
            raise ValueError(f"estimate_gain: unknown activation {activation!r}; valid: "
                             f"{', '.join(sorted(table))}, or a vectorized callable")
        phi = table[activation]
    elif callable(activation):
        phi = activation
    else:
        raise TypeError(f"estimate_gain: activation must be a name or a callable, got "
                        f"{type(activation).__name__}")
    nodes, weights = np.polynomial.legendre.leggauss(64)
    left = np.arange(-12.0, 12.0)  # unit intervals [k, k+1]
    z = (left[:, None] + 0.5 * (nodes[None, :] + 1.0)).ravel()
    w = np.tile(0.5 * weights, left.size)
    try:
        values = np.asarray(phi(z.copy()))
    except (TypeError, ValueError) as e:  # e.g. math.tanh: works on a float, not on an array
        raise TypeError(f"estimate_gain: activation must be a vectorized callable (float64 array "
                        f"in, array of the same shape out); calling it on an array failed: "
                        f"{type(e).__name__}: {e}") from None
    if values.dtype.kind not in "fiub":  # complex would silently lose its imaginary part
        raise TypeError(f"estimate_gain: the activation must return real numbers, got dtype "
                        f"{values.dtype}")
    values = values.astype(np.float64)
    if values.shape != z.shape:
        raise ValueError("estimate_gain: the activation must map an array to an array of the "
                         "same shape")
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    second_moment = float(np.sum(w * values * values * density))
    if not (math.isfinite(second_moment) and second_moment > 0):
        raise ValueError(f"estimate_gain: E[phi(z)^2] = {second_moment} is not a positive number")
    return 1.0 / math.sqrt(second_moment)
