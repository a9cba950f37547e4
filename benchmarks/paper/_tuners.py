"""The tuners a suite can run: the registry of names, and a tuner as data.

`TUNERS` maps a name to its `eqtuners` constructor: a new tuner is one entry
there. A `TunerSpec` is a registered name (or an import path `package.module:Name`
of a user's own `AbstractTuner`, or of a function returning one) with keyword
arguments; `parse_tuner` reads the command line's form,
`NAME[:ARG=VALUE[,ARG=VALUE...]]`, for instance `armijo`, `polyak:max_stepsize=3`,
`cdat:sigma=1.8` or `my_package.tuners:MyTuner:alpha=0.5`.
"""

import ast
import dataclasses
import hashlib
import importlib
import inspect
import re
from collections.abc import Callable

import eqtuners as et


@dataclasses.dataclass(frozen=True)
class Registered:
    """A tuner known by name.

    - `make`: its constructor (a class or a function returning an `AbstractTuner`).
    - `label`: its name in figures and reports, `{value}` standing for the
      argument named `value`; `default_label` is used instead at that argument's
      default (`None`: `label` always).
    - `value`: the constructor's argument that `TunerSpec.value` sets (the step
      of GD, the cap of Armijo and Polyak), or `None`.
    - `color`: its colour in every figure of every suite.
    """

    make: Callable[..., et.AbstractTuner]
    label: str
    value: str | None = None
    default_label: str | None = None
    color: str = "#7f7f7f"


def zhang_hager_forward(
    c=1e-4,
    max_stepsize=10.0,
    decrease_factor=0.5,
    xi=1.0,
    increase_factor=2.0,
    max_backtracks=100,
    block_size=1,
) -> et.Armijo:
    """The Zhang-Hager search with forward tracking, its options as flat keywords
    (`--tuners zhang_hager:xi=0.5,increase_factor=3`): `et.Armijo(c, max_stepsize,
    decrease_factor, max_backtracks, block_size=block_size,
    reference=et.ZhangHagerReference(xi),
    first_trial=et.ForwardTracking(increase_factor))`. The defaults are Flatland's
    (`python_scripts/experiment_group.py`: `c = 1e-4`, `delta = 0.5`, `xi = 1`,
    doubling), with PoNoS's cap of 10 (Flatland's forward phase has none)."""
    return et.Armijo(
        c,
        max_stepsize,
        decrease_factor,
        max_backtracks,
        block_size=block_size,
        reference=et.ZhangHagerReference(xi),
        first_trial=et.ForwardTracking(increase_factor),
    )


TUNERS = {
    "constant": Registered(et.Constant, "GD {value:.3g}", "stepsize", None, "#1f77b4"),
    "armijo": Registered(
        et.Armijo, "Armijo (cap {value:.3g})", "max_stepsize", "Armijo", "#2ca02c"
    ),
    "polyak": Registered(
        et.Polyak, "Polyak (cap {value:.3g})", "max_stepsize", "Polyak", "#d62728"
    ),
    "cdat": Registered(et.CDAT, "CDAT (sigma {value:.3g})", "sigma", None, "#ff7f0e"),
    "ponos": Registered(
        et.PoNoS, "PoNoS (cap {value:.3g})", "max_stepsize", "PoNoS", "#9467bd"
    ),
    "zhang_hager": Registered(
        zhang_hager_forward,
        "Zhang-Hager fwd (cap {value:.3g})",
        "max_stepsize",
        "Zhang-Hager fwd",
        "#8c564b",
    ),
}

# Colours for tuners given by import path (by a hash of the path: each keeps one),
# none of them a registered tuner's.
SPARE_COLORS = ("#e377c2", "#17becf", "#bcbd22", "#393b79", "#7b4173", "#637939")


class TunerError(ValueError):
    """A tuner that cannot be built from what was given (one line)."""


def known_names() -> str:
    return (
        ", ".join(sorted(TUNERS))
        + ", or an import path package.module:Name of an AbstractTuner"
    )


def _import(path: str) -> Callable:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TunerError(
            f"cannot import {module_name!r} for the tuner {path!r} ({error}); "
            f"known tuners: {known_names()}"
        ) from None
    make = getattr(module, attribute, None)
    if make is None:
        raise TunerError(
            f"{module_name!r} has no {attribute!r}; known tuners: {known_names()}"
        )
    if isinstance(make, type):
        usable = issubclass(make, et.AbstractTuner)
    else:
        usable = callable(make)
    if not usable:
        raise TunerError(
            f"{path!r} is not an eqtuners.AbstractTuner (nor a function returning "
            f"one); known tuners: {known_names()}"
        )
    return make


def _constructor(kind: str) -> Callable:
    if kind in TUNERS:
        return TUNERS[kind].make
    if ":" in kind:
        return _import(kind)
    raise TunerError(f"unknown tuner {kind!r}; known tuners: {known_names()}")


def _parameters(make) -> dict[str, inspect.Parameter] | None:
    """The keyword arguments `make` takes (`None`: any, or not known)."""
    try:
        parameters = inspect.signature(make).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return None
    return {
        name: p
        for name, p in parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _normalised(value, parameter: inspect.Parameter | None):
    """An integer given for an argument whose default is a float, as a float (so
    `cap=3` and `cap=3.0` are one configuration)."""
    default = None if parameter is None else parameter.default
    if isinstance(value, int) and not isinstance(value, bool):
        if isinstance(default, float):
            return float(value)
    return value


def _default_value(entry: Registered):
    """The default of the argument `entry.value` stands for (`None`: none)."""
    if entry.value is None:
        return None
    default = inspect.signature(entry.make).parameters[entry.value].default
    return None if default is inspect.Parameter.empty else default


def _slug_text(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "", text)


@dataclasses.dataclass(frozen=True)
class TunerSpec:
    """A tuner as data: `kind` (a name of `TUNERS`, or an import path), `value`
    (the registered `value` argument; `None`: its default) and `options` (other
    keyword arguments, as sorted `(name, value)` pairs).

    Given a registered kind, the value argument found in `options` moves to
    `value`, and `value` defaults to the constructor's default, so that one tuner
    has one spec (and one run name).
    """

    kind: str
    value: float | None = None
    options: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        options = dict(self.options)
        value = self.value
        entry = TUNERS.get(self.kind)
        if entry is not None and entry.value is not None:
            if entry.value in options:
                value = options.pop(entry.value)
            if value is None:
                value = _default_value(entry)
        object.__setattr__(self, "value", None if value is None else float(value))
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    def arguments(self) -> dict:
        """The constructor's keyword arguments."""
        arguments = dict(self.options)
        entry = TUNERS.get(self.kind)
        if entry is not None and entry.value is not None and self.value is not None:
            arguments[entry.value] = self.value
        return arguments

    def build(self) -> et.AbstractTuner:
        """The tuner. **Raises:** `TunerError` (a `ValueError`, one line) for an
        unknown name, an argument the tuner does not take, a value it refuses, or
        an import path that does not give an `AbstractTuner`."""
        make = _constructor(self.kind)
        arguments = self.arguments()
        parameters = _parameters(make)
        if parameters is not None:
            unknown = sorted(set(arguments) - set(parameters))
            if unknown:
                raise TunerError(
                    f"the tuner {self.kind!r} takes no argument {unknown[0]!r} "
                    f"(it takes: {', '.join(parameters) or 'none'}); known tuners: "
                    f"{known_names()}"
                )
        try:
            tuner = make(**arguments)
        except (ValueError, TypeError) as error:
            message = " ".join(str(error).split())
            raise TunerError(
                f"the tuner {self.kind!r} refused {arguments}: {message} (known "
                f"tuners: {known_names()})"
            ) from None
        if not isinstance(tuner, et.AbstractTuner):
            raise TunerError(
                f"{self.kind!r} gave {type(tuner).__name__}, not an "
                f"eqtuners.AbstractTuner; known tuners: {known_names()}"
            )
        return tuner

    @property
    def label(self) -> str:
        """The name of the run in figures and reports."""
        entry = TUNERS.get(self.kind)
        if entry is None:
            label = self.kind.rpartition(":")[2]
        elif entry.default_label is not None and self.value == _default_value(entry):
            label = entry.default_label
        else:
            label = entry.label.format(value=self.value)
        if self.options:
            label += ", " + ", ".join(f"{k}={v}" for k, v in self.options)
        return label

    @property
    def color(self) -> str:
        """The tuner's colour in every figure (see `TUNERS`)."""
        if self.kind in TUNERS:
            return TUNERS[self.kind].color
        digest = int(hashlib.sha256(self.kind.encode()).hexdigest(), 16)
        return SPARE_COLORS[digest % len(SPARE_COLORS)]

    def slug(self) -> str:
        """The tuner's part of a run name (the name's hash tells runs apart)."""
        name = self.kind if self.kind in TUNERS else self.kind.rpartition(":")[2]
        slug = _slug_text(name.lower())
        if self.value is not None:
            slug += f"{self.value:.4g}"
        if self.options:
            slug += "-" + "-".join(_slug_text(f"{k}{v}") for k, v in self.options)
        return slug[:48]

    def to_json(self) -> dict:
        """The tuner's part of a run's configuration (`options` only when given:
        the names of runs made before options existed stay the same)."""
        config = {"kind": self.kind, "value": self.value}
        if self.options:
            config["options"] = dict(self.options)
        return config


def _literal(text: str):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return tuple(value) if isinstance(value, list) else value  # hashable


def parse_tuner(text: str) -> TunerSpec:
    """A tuner from the command line: `NAME[:ARG=VALUE[,ARG=VALUE...]]` or
    `package.module:Name[:ARG=VALUE...]` (values are Python literals: numbers,
    `True`, `None`; anything else is a string). The tuner is built once, so that
    every mistake is found before any work.

    **Raises:** `TunerError` (one line, listing the known names).
    """
    name, *rest = text.split(":")
    if name not in TUNERS and rest and "=" not in rest[0]:
        name = f"{name}:{rest.pop(0)}"
    _constructor(name)  # an unknown name says so before its arguments are read
    parameters = _parameters(_constructor(name)) or {}
    options = {}
    for part in ",".join(rest).split(","):
        if not part:
            continue
        key, equals, value = part.partition("=")
        if not equals or not key.isidentifier():
            raise TunerError(
                f"{text!r}: {part!r} is not ARG=VALUE; write for instance "
                f"cdat:sigma=1.8 (known tuners: {known_names()})"
            )
        options[key] = _normalised(_literal(value), parameters.get(key))
    spec = TunerSpec(name, options=tuple(options.items()))
    spec.build()
    return spec
