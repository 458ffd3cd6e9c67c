"""Second-eye involvement: onset at the stated rate, the first eye's schedule from onset on."""

from __future__ import annotations

import math

import msgspec
import numpy as np

from engine.compare.block import compile_arms, simulate_compare_block
from engine.compare.features import EyeSettings, feature_index
from engine.compare.matrix_moments import MatrixMoments
from engine.compare.totals import merge_blocks
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol

ALTAIR = "aflibercept_treat_and_extend_altair"
VIEW_2Q8 = "aflibercept_2q8_view"
EYE = EyeSettings(
    edges=[0.0, 36.0, 55.0, 70.0],
    fellow_probabilities=[0.3, 0.3, 0.2, 0.2],
    treated_eye_better_share=0.5,
)
RATE = 0.115  # per year: CATT's 20.6 % in 2 years (Maguire 2013)


def _features(eye: EyeSettings, n: int = 4000, years: float = 3.0, protocols=(ALTAIR, VIEW_2Q8)):
    model = compile_arms([load_protocol(p) for p in protocols])
    params = RunParameters(n_patients=n, years=years, seed=13, shard_size=n)
    return simulate_compare_block(model, params, eye, 0, [0])


def _matrix(summary, arm: int) -> MatrixMoments:
    return MatrixMoments.from_state(summary.arms[arm].features)


def test_second_eye_visits_add_to_the_first_eyes_without_changing_them() -> None:
    off = _features(EYE)
    on = _features(msgspec.structs.replace(EYE, second_eye_rate=RATE))
    index = feature_index(len(EYE.edges))
    first_eye = [i for name, i in index.items() if not name.startswith("second_eye_")]
    second_eye = [i for name, i in index.items() if name.startswith("second_eye_")]
    for arm in range(2):
        a, b = _matrix(off, arm), _matrix(on, arm)
        np.testing.assert_array_equal(a.mean[first_eye], b.mean[first_eye])
        assert np.all(a.mean[second_eye] == 0.0)
        assert np.all(b.mean[second_eye] > 0.0)
        assert sum(on.arms[arm].weekly[k][w] for k in range(3) for w in range(10)) > sum(
            off.arms[arm].weekly[k][w] for k in range(3) for w in range(10)
        )


def test_the_share_with_a_treated_second_eye_follows_the_rate() -> None:
    """Every patient is seen on day 0, so the second eye has a visit iff onset < time alive.

    Over a 3-year horizon with mortality m(t), P = E[1 - exp(-rate * alive)]; with the
    loading visits at onset, the second eye's loading injections count those patients.
    """
    n, years = 20_000, 3.0
    summary = _features(msgspec.structs.replace(EYE, second_eye_rate=RATE), n, years, (ALTAIR,))
    matrix = _matrix(summary, 0)
    index = feature_index(len(EYE.edges))
    # Loading injections of the second eye: 3 per patient whose second eye started at least
    # 56 days before death or the horizon; at least one if it started at all.
    loading = matrix.mean[index["second_eye_visits_loading_injection"]]
    alive = matrix.mean[index["alive_years"]]
    upper = 3 * (1 - math.exp(-RATE * years))
    lower = 3 * (1 - math.exp(-RATE * (alive - 56 / 365.25)))
    se = 3 * math.sqrt(upper / 3 * (1 - upper / 3) / n)
    assert lower - 3 * se <= loading <= upper + 3 * se


def test_identical_arms_stay_identical_with_a_second_eye() -> None:
    on = _features(msgspec.structs.replace(EYE, second_eye_rate=RATE), protocols=(ALTAIR, ALTAIR))
    pair = merge_blocks([on]).pairs[0]
    size = pair.features.size // 2
    assert np.all(pair.features.mean[:size] == 0.0)
    assert np.all(pair.features.m2[:size, :size] == 0.0)
