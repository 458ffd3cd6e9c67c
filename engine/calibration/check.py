"""Check a targets file: each target's simulated value against its source's 95 % CI.

A target passes when the simulated value lies inside the source's confidence interval. Its
margin is the distance to the nearer end of the interval in Monte Carlo standard errors of the
simulated value: a margin of 3.3 or more means another seed would pass too with probability
above 0.999 (one-sided normal tail 0.0005), so pass and fail measure the model, not the draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.calibration.figures import Estimate, Progress, evaluate_targets
from engine.calibration.targets import Target, TargetsFile, target_protocol_path
from engine.errors import TargetsError
from engine.model.protocol_loader import load_protocol, resolve_protocol_path
from engine.model.v2.schema import TimeBasedProtocol

__all__ = [
    "SAFE_MARGIN_SE",
    "TargetCheck",
    "check_targets",
    "load_target_protocols",
    "select_targets",
]

SAFE_MARGIN_SE = 3.3


@dataclass(frozen=True)
class TargetCheck:
    """One target, the model's value of it, and whether that value is inside the CI."""

    target: Target
    estimate: Estimate

    @property
    def passed(self) -> bool:
        """Whether the simulated value lies inside the source's 95 % CI."""
        low, high = self.target.ci
        return low <= self.estimate.value <= high

    @property
    def margin_se(self) -> float:
        """Distance to the nearer CI end in standard errors; negative when outside."""
        low, high = self.target.ci
        distance = min(self.estimate.value - low, high - self.estimate.value)
        if not self.estimate.se > 0:
            return math.inf if distance >= 0 else -math.inf
        return distance / self.estimate.se

    def as_dict(self) -> dict[str, object]:
        """The JSON form `amdsim check-targets --json` prints."""
        target = self.target
        return {
            "id": target.id,
            "role": target.role,
            "protocol": target.protocol,
            "figure": target.figure,
            "view": target.view,
            "day": target.day,
            "from_day": target.from_day,
            "to_day": target.to_day,
            "target": target.value,
            "ci": list(target.ci),
            "simulated": _finite(self.estimate.value),
            "se": _finite(self.estimate.se),
            "patients_counted": self.estimate.n,
            "passed": self.passed,
            "margin_se": _finite(self.margin_se),
            "source": target.source,
        }


def select_targets(
    targets_path: Path, targets: Sequence[Target], protocols: Sequence[str]
) -> list[Target]:
    """The targets whose protocol is one of `protocols` (bundled names or paths); all if none."""
    if not protocols:
        return list(targets)
    named = {target_protocol_path(targets_path, target) for target in targets}
    wanted = set()
    for reference in protocols:
        path = resolve_protocol_path(reference).resolve()
        if path not in named:
            listed = ", ".join(sorted({target.protocol for target in targets}))
            raise TargetsError(
                str(targets_path),
                None,
                f"no target names the protocol {reference!r}; its targets name {listed}",
            )
        wanted.add(path)
    return [t for t in targets if target_protocol_path(targets_path, t) in wanted]


def load_target_protocols(
    targets_path: Path, targets: Sequence[Target]
) -> dict[str, TimeBasedProtocol]:
    """Each protocol the targets name, loaded and validated, keyed as the targets write it."""
    protocols: dict[str, TimeBasedProtocol] = {}
    for target in targets:
        if target.protocol in protocols:
            continue
        protocol = load_protocol(target_protocol_path(targets_path, target))
        if not isinstance(protocol, TimeBasedProtocol):
            raise TargetsError(
                str(targets_path),
                None,
                f"target {target.id!r} names {target.protocol}, a visit-based protocol; targets "
                "are checked on the time-based model (model_type: time_based)",
            )
        protocols[target.protocol] = protocol
    return protocols


def check_targets(
    targets_path: Path,
    targets_file: TargetsFile,
    protocols: Sequence[str] = (),
    *,
    patients: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> list[TargetCheck]:
    """Simulate every protocol the (selected) targets name and check each target."""
    chosen = select_targets(targets_path, targets_file.targets, protocols)
    loaded = load_target_protocols(targets_path, chosen)
    estimates = evaluate_targets(
        chosen,
        loaded,
        patients if patients is not None else targets_file.patients,
        seed if seed is not None else targets_file.seed,
        progress,
    )
    return [
        TargetCheck(target, estimate) for target, estimate in zip(chosen, estimates, strict=True)
    ]


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: a figure no patient counts in is null."""
    return value if math.isfinite(value) else None
