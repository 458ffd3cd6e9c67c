"""Calibration and validation targets: published figures a protocol should reproduce.

A targets file (YAML) names a cohort size and seed, then a list of targets. Each target is one
figure of one study (mean injections in a window, mean or SD of the VA change at a day, a share
of patients gaining or losing letters, a share discontinued), the bundled or user protocol that
reproduces the study's regimen and population, the study's value and its 95 % confidence
interval, and whether the fit may use it (`calibration`) or must not (`validation`).
docs/validation.md defines every figure; the bundled file is
``engine/protocols/targets/aflibercept_2mg.yaml``.

Protocol paths are relative to the targets file, so a folder of targets and protocols can be
moved or shared as one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.errors import ProtocolError, TargetsError
from engine.model.protocol_yaml import decode_protocol_yaml
from engine.model.validation import check_finite, convert

__all__ = [
    "DAY_FIGURES",
    "FIGURES",
    "SHARE_FIGURES",
    "Target",
    "TargetsFile",
    "bundled_targets_path",
    "load_targets",
    "target_protocol_path",
]

Figure = Literal[
    "injections",
    "va_change",
    "va_change_sd",
    "gained_15",
    "lost_lt_15",
    "lost_15",
    "discontinued",
]
FIGURES: tuple[str, ...] = Figure.__args__  # type: ignore[attr-defined]
# Figures read at one day (`day`); `injections` counts over [from_day, to_day) instead.
DAY_FIGURES = frozenset(FIGURES) - {"injections"}
# Figures that are shares of patients, in percent.
SHARE_FIGURES = frozenset({"gained_15", "lost_lt_15", "lost_15", "discontinued"})
MAX_DAY = 36_500  # 100 years: the longest horizon a run allows
Day = Annotated[int, Meta(ge=0, le=MAX_DAY)]
_ID = re.compile(r"^[a-z0-9_]{1,64}$")


class Target(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One published figure and the protocol that should reproduce it."""

    id: str
    role: Literal["calibration", "validation"]
    protocol: str  # path relative to the targets file
    figure: Figure
    # locf: every patient enrolled (trials' full analysis set, last observation carried
    # forward); observed: alive and under treatment at the day (or at the end of an injections
    # window: completers, as registries report); entered (injections only): alive and under
    # treatment at the window's start (a trial's "patients who entered year 2").
    view: Literal["locf", "observed", "entered"] = "locf"
    day: Day | None = None  # figures at a day: the day since enrolment
    from_day: Day | None = None  # injections: days since enrolment in [from_day, to_day)
    to_day: Day | None = None
    value: float
    ci: tuple[float, float]  # the source's 95 % confidence interval, same units as `value`
    source: str  # study, reference, table or figure
    note: str = ""  # how the value or the interval was derived


class TargetsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A set of targets with the cohort size and seed to check them at."""

    name: str = ""
    patients: Annotated[int, Meta(ge=100, le=10_000_000)] = 20_000
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 1
    targets: list[Target]


def bundled_targets_path() -> Path:
    """The targets file shipped with amdsim (aflibercept 2 mg, docs/validation.md)."""
    return Path(__file__).resolve().parent.parent / "protocols" / "targets" / "aflibercept_2mg.yaml"


def target_protocol_path(targets_path: str | Path, target: Target) -> Path:
    """The protocol file of `target`, resolved against the targets file's folder."""
    return (Path(targets_path).parent / target.protocol).resolve()


def load_targets(path: str | Path) -> TargetsFile:
    """Read and check a targets file; `TargetsError` naming the file and field if it is bad."""
    path = Path(path)
    label = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise TargetsError(str(path), None, f"cannot be read ({reason})") from exc
    try:
        raw = decode_protocol_yaml(data, label, "calibration targets")
        check_finite(raw, TargetsFile, "$", label)
        targets: TargetsFile = convert(raw, TargetsFile, label)
    except ProtocolError as exc:
        raise TargetsError(exc.source, exc.path, exc.problem) from exc
    if not targets.targets:
        raise TargetsError(label, "$.targets", "is empty; list at least one target")
    seen: set[str] = set()
    for index, target in enumerate(targets.targets):
        where = f"$.targets[{index}]"
        _check_target(target, label, where)
        if target.id in seen:
            raise TargetsError(label, f"{where}.id", f"{target.id!r} is used twice")
        seen.add(target.id)
        if not target_protocol_path(path, target).is_file():
            raise TargetsError(
                label,
                f"{where}.protocol",
                f"{target.protocol!r} is not a file (paths are relative to the targets file, "
                f"looked for {target_protocol_path(path, target)})",
            )
    return targets


def _check_target(target: Target, label: str, where: str) -> None:
    """The checks between a target's fields: days its figure needs, a CI around the value."""
    if not _ID.match(target.id):
        raise TargetsError(
            label, f"{where}.id", f"{target.id!r} must be 1-64 of a-z, 0-9 and underscore"
        )
    if target.figure == "injections":
        if target.from_day is None or target.to_day is None:
            raise TargetsError(
                label,
                where,
                "an injections target needs from_day and to_day (days since enrolment)",
            )
        if target.to_day <= target.from_day:
            raise TargetsError(label, f"{where}.to_day", "must be after from_day")
        if target.day is not None:
            raise TargetsError(label, f"{where}.day", "is for figures at a day, not injections")
    else:
        if target.day is None:
            raise TargetsError(label, where, f"a {target.figure} target needs `day`")
        if target.from_day is not None or target.to_day is not None:
            raise TargetsError(label, where, "from_day and to_day are for injections targets")
        if target.view == "entered":
            raise TargetsError(
                label,
                f"{where}.view",
                "entered (under treatment at the window's start) is "
                "for injections targets; use locf or observed",
            )
    low, high = target.ci
    if not low <= target.value <= high:
        raise TargetsError(
            label,
            f"{where}.ci",
            f"[{low:g}, {high:g}] does not contain the value {target.value:g}",
        )
    if low == high:
        raise TargetsError(label, f"{where}.ci", "has zero width; the fit weights by its width")
    if target.figure in SHARE_FIGURES and not 0 <= low <= high <= 100:
        raise TargetsError(label, f"{where}.ci", "a share is in percent, between 0 and 100")
