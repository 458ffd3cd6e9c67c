"""The common-random-number generator: its contract, exact answers and statistical quality.

The scheme is re-implemented here in plain Python ints and floats from the contract in
`engine.model.v2.random_numbers`' docstring (constants typed again, not imported), and the
numpy code must agree bit for bit: that, with the hard-coded known answers, is what keeps
format-2 rows identical across numpy versions and machines.

Statistical tests use fixed seeds, so they are deterministic; each test function's
family-wise false-failure probability (over the choice of seed) is at most 1e-5, split by
Bonferroni among its assertions, so this file contributes under 1e-4 to the suite's budget.
Critical values: two-sided normal at 1e-5 is 4.42 sigma; chi-square quantiles by the
Wilson-Hilferty approximation (accurate to a few percent of the tail probability here).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from engine.model.v2.draws import VISIT_STEP, CrnSource
from engine.model.v2.random_numbers import (
    CounterRandom,
    Purpose,
    _inverse_normal_cdf,
    normals_from_bits,
)

pytestmark = pytest.mark.filterwarnings("error")  # a uint64 overflow warning would fail

ALPHA = 1e-5
N = 200_000

# ---- independent plain-Python implementation of the scheme --------------------------------
MASK = 2**64 - 1
GOLDEN = 0x9E3779B97F4A7C15
SEED_SALT, ID_SALT, COUNTER_SALT = 0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0
A = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
     -30.66479806614716, 2.506628277459239]  # fmt: skip
B = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
     -13.28068155288572, 1.0]  # fmt: skip
C = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
     4.374664141464968, 2.938163982698783]  # fmt: skip
D = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416, 1.0]


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def ref_bits(seed: int, patient: int, step: int, purpose: int, draw: int, variate: int) -> int:
    key = mix64(mix64(seed ^ SEED_SALT) ^ mix64((patient * GOLDEN + ID_SALT) & MASK))
    counter = step | purpose << 20 | draw << 28 | variate << 36
    return mix64((key + mix64((counter * GOLDEN + COUNTER_SALT) & MASK)) & MASK)


def ref_uniform(seed, patient, step, purpose, draw=0) -> float:
    return (ref_bits(seed, patient, step, purpose, draw, 0) >> 11) * 2.0**-53


def horner(x: float, coefficients: list[float]) -> float:
    value = x * coefficients[0]
    for c in coefficients[1:-1]:
        value = (value + c) * x
    return value + coefficients[-1]


def ref_log(t: float) -> float:
    m, e = math.frexp(t)
    if m < 0.7071067811865476:
        m, e = m * 2.0, e - 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = 1.0 / 15
    for k in (13, 11, 9, 7, 5, 3):
        series = series * s2 + 1.0 / k
    series = series * s2 + 1.0
    return e * 0.6931471805599453 + 2.0 * s * series


def ref_acklam(q: float) -> float:
    """Acklam's quantile of p = q + 1/2, central or tail formula."""
    r = q * q
    if r > (0.5 - 0.02425) ** 2:
        s = math.sqrt(-2.0 * ref_log(0.5 - abs(q)))
        return math.copysign(horner(s, C) / horner(s, D), q)
    return q * horner(r, A) / horner(r, B)


def ref_cubic(cell: int) -> tuple[float, float, float, float]:
    """(c0, c1, c2, c3) of an inner cell: Newton's form through Acklam at f = 0, 1/3, 2/3, 1."""
    y0, y1, y2, y3 = (ref_acklam((cell + j / 3) * 2.0**-10 - 0.5) for j in range(4))
    return newton_cubic(y0, y1, y2, y3)


def ref_acklam_tail(t: float) -> float:
    """Acklam's tail formula of t = min(p, 1 - p), as a lower-tail (negative) quantile."""
    s = math.sqrt(-2.0 * ref_log(t))
    return -abs(horner(s, C) / horner(s, D))


def ref_octave_cubic(part: int) -> tuple[float, float, float, float]:
    """Part e * 8 + j of the outer cells: w = 2**e (1 + (j + f) / 8), t = w 2**-53."""
    e, j = part >> 3, part & 7
    y = [ref_acklam_tail((1 + (j + x) * 2.0**-3) * 2.0 ** (e - 53)) for x in (0, 1 / 3, 2 / 3, 1)]
    return newton_cubic(*y)


def newton_cubic(y0: float, y1: float, y2: float, y3: float) -> tuple[float, ...]:
    d1 = y1 - y0
    d2 = (y2 - y1) - d1
    d3 = ((y3 - y2) - (y2 - y1)) - d2
    return y0, (d1 - 0.5 * d2 + d3 / 3) * 3, (d2 - d3) * 4.5, d3 * 4.5


REF_CUBICS = {cell: ref_cubic(cell) for cell in range(8, 1016)}
REF_OCTAVE_CUBICS = [ref_octave_cubic(part) for part in range(46 * 8)]


def ref_normal_of_bits(bits: int) -> float:
    """Top 10 bits pick the cell of p: a cubic per inner cell, per eighth octave outside."""
    cell, u52 = bits >> 54, bits >> 12
    if cell < 8 or cell >= 1016:
        upper = u52 >= 2**51
        w = 2 * ((2**52 - 1 - u52) if upper else u52) + 1
        e = w.bit_length() - 1
        mantissa = (w << (52 - e)) - 2**52
        c0, c1, c2, c3 = REF_OCTAVE_CUBICS[e * 8 + (mantissa >> 49)]
        f = (mantissa & (2**49 - 1)) * 2.0**-49
        z = ((c3 * f + c2) * f + c1) * f + c0
        return -z if upper else z
    f = ((u52 & (2**42 - 1)) * 2 + 1) * 2.0**-43
    c0, c1, c2, c3 = REF_CUBICS[cell]
    return ((c3 * f + c2) * f + c1) * f + c0


def ref_normal(seed, patient, step, purpose, draw=0) -> float:
    return ref_normal_of_bits(ref_bits(seed, patient, step, purpose, draw, 1))


# ---- exact behaviour ------------------------------------------------------------------------
KNOWN = [  # (seed, patient, step, purpose, draw) -> uniform, normal, as exact hex floats
    ((0, 0, 0, 1, 0), "0x1.59ff822f268d0p-2", "0x1.634761519e831p-1"),
    ((11, 4095, 26, 7, 0), "0x1.8ca3154356ce7p-1", "0x1.6232c62104122p-1"),
    ((11, 63, 26, 7, 0), "0x1.57475d18831bdp-1", "-0x1.4379f20bf6afdp+1"),  # outer cell
    ((11, 199, 26, 7, 0), "0x1.9bdae787ab900p-5", "0x1.61548cb44227cp+1"),  # outer cell
    # An inner cell whose points come from Acklam's tail formula (p < 0.02425).
    ((11, 207, 26, 7, 0), "0x1.2ce491ecebe4cp-1", "0x1.209b650e5bf47p+1"),
    ((2**63 - 1, 2**40 - 1, 2**20 - 1, 20, 255), "0x1.b853a4c2dc4ecp-3", "0x1.b4aee05466efdp-1"),
    ((123456789, 99_999, 130, 14, 3), "0x1.aad39260d9939p-1", "-0x1.ccccc845eeafep-1"),
]


@pytest.mark.parametrize("key,uniform,normal", KNOWN)
def test_reference_implementation_gives_known_answers(key, uniform, normal):
    """The plain-Python scheme and the numpy generator give the recorded numbers exactly."""
    assert ref_uniform(*key) == float.fromhex(uniform)
    assert ref_normal(*key) == float.fromhex(normal)
    seed, patient, step, purpose, draw = key
    crn = CounterRandom(seed, np.array([patient]))
    assert crn.uniform(step, Purpose(purpose), draw=draw)[0] == float.fromhex(uniform)
    assert crn.normal(step, Purpose(purpose), draw=draw)[0] == float.fromhex(normal)


def test_numpy_generator_matches_reference_bit_for_bit():
    """Uniforms and normals (tails included) equal the plain-Python scheme exactly."""
    rng = np.random.default_rng(2024)
    ids = rng.integers(0, 2**40, 400)
    crn = CounterRandom(987654321, ids)
    for step, purpose, draw in [(0, Purpose.ENROLMENT, 0), (77, Purpose.DEATH, 2)]:
        uniforms = crn.uniform(step, purpose, draw=draw)
        normals = crn.normal(step, purpose, draw=draw)
        for i, patient in enumerate(ids.tolist()):
            assert uniforms[i] == ref_uniform(987654321, patient, step, purpose, draw)
            assert normals[i] == ref_normal(987654321, patient, step, purpose, draw)
    # Outer cells (|z| > 2.418, Acklam) and the inner cells of Acklam's tail formula (|z| >
    # 1.972), found by search; and per-row steps (the kernel's visit draws) use the same path.
    crn = CounterRandom(5, np.arange(20_000))
    normals = crn.normal(9, Purpose.VISION_CHANGE)
    for low, high in ((2.418, 9.0), (1.972, 2.417)):
        tails = np.flatnonzero((np.abs(normals) > low) & (np.abs(normals) < high))[:200]
        assert tails.size == 200
        for patient in tails.tolist():
            assert normals[patient] == ref_normal(5, patient, 9, Purpose.VISION_CHANGE)
    # Every octave of the outer cells, both tails, down to p = 2**-53: hashed words made up.
    v = np.array([0, 1, 2, 3] + [(1 << e) + (e * 0x9E3779B97F4A7C15 & ((1 << e) - 1))
                  for e in range(2, 45)] + [2**45 - 1], dtype=np.uint64)  # fmt: skip
    u52 = np.concatenate([v, np.uint64(2**52 - 1) - v])
    z = normals_from_bits(u52 << np.uint64(12), np.empty(u52.size))
    for word, value in zip((u52 << np.uint64(12)).tolist(), z.tolist(), strict=True):
        assert value == ref_normal_of_bits(word)
    rows = np.arange(0, 20_000, 37)
    steps = VISIT_STEP + rows % 50
    at = CrnSource(5, np.arange(20_000)).normal_at(steps, Purpose.MEASUREMENT_NOISE, rows)
    for row, step, z in zip(rows.tolist(), steps.tolist(), at.tolist(), strict=True):
        assert z == ref_normal(5, row, step, Purpose.MEASUREMENT_NOISE)


def test_same_key_gives_same_numbers_whatever_was_drawn_before():
    crn = CounterRandom(3, np.arange(1000))
    first = crn.uniform(5, Purpose.TRANSITION).copy()
    crn.normal(6, Purpose.VISION_CHANGE)
    crn.uniform(5, Purpose.DEATH, rows=np.arange(10))
    assert np.array_equal(crn.uniform(5, Purpose.TRANSITION), first)
    assert np.array_equal(CounterRandom(3, np.arange(1000)).uniform(5, Purpose.TRANSITION), first)


@pytest.mark.parametrize("block", [1, 1000, 4096])
def test_draws_do_not_depend_on_block_size_or_order(block):
    """A patient's numbers depend on its id only, not on the other ids in the array."""
    ids = np.arange(10_000)
    whole_u = CounterRandom(8, ids).uniform(40, Purpose.HAEMORRHAGE)
    whole_z = CounterRandom(8, ids).normal(40, Purpose.MEASUREMENT_NOISE)
    starts = range(0, ids.size, block) if block > 1 else range(0, 20)
    for start in starts:
        part = CounterRandom(8, ids[start : start + block])
        assert np.array_equal(part.uniform(40, Purpose.HAEMORRHAGE), whole_u[start : start + block])
        assert np.array_equal(
            part.normal(40, Purpose.MEASUREMENT_NOISE), whole_z[start : start + block]
        )
    shuffled = np.random.default_rng(1).permutation(ids)
    assert np.array_equal(
        CounterRandom(8, shuffled).uniform(40, Purpose.HAEMORRHAGE), whole_u[shuffled]
    )


def test_rows_select_the_same_numbers_as_the_whole_array():
    crn = CounterRandom(21, np.arange(5000, 9000))
    rows = np.array([3999, 0, 17, 17, 2500])
    out = np.empty(rows.size)
    assert crn.uniform(2, Purpose.SEX, rows=rows, out=out) is out
    assert np.array_equal(out, crn.uniform(2, Purpose.SEX)[rows])
    assert np.array_equal(
        crn.normal(2, Purpose.SEX, rows=rows, draw=4), crn.normal(2, Purpose.SEX, draw=4)[rows]
    )
    assert crn.uniform(2, Purpose.SEX, rows=np.array([], dtype=np.intp)).size == 0
    many = np.tile(rows, 2000)  # more rows than patients
    assert np.array_equal(crn.normal(3, Purpose.SEX, rows=many), crn.normal(3, Purpose.SEX)[many])
    assert CounterRandom(21, np.array([], dtype=np.int64)).normal(2, Purpose.SEX).size == 0


def test_bad_keys_are_refused():
    crn = CounterRandom(1, np.arange(10))
    with pytest.raises(ValueError, match="step"):
        crn.uniform(2**20, Purpose.DEATH)
    with pytest.raises(ValueError, match="draw"):
        crn.normal(0, Purpose.DEATH, draw=256)
    with pytest.raises(ValueError):
        crn.uniform(0, 99)
    with pytest.raises(TypeError, match="integer positions"):
        crn.uniform(0, Purpose.DEATH, rows=np.ones(10, dtype=bool))
    with pytest.raises(TypeError, match="integer positions"):
        crn.uniform(0, Purpose.DEATH, rows=np.zeros((2, 2), dtype=np.intp))
    with pytest.raises(IndexError):
        crn.uniform(0, Purpose.DEATH, rows=np.array([10]))
    with pytest.raises(ValueError, match="patient ids"):
        CounterRandom(1, np.array([2**40]))
    with pytest.raises(ValueError, match="seed"):
        CounterRandom(-1, np.arange(3))


def test_inverse_normal_cdf_is_monotone_across_its_region_boundaries():
    """Acklam's central and tail formulas (the outer cells, and the cubics' points) join
    with a step back of under 1e-12 (about 1.6e-13 at p = 0.02425 and its mirror), and the
    quantile rises everywhere else."""
    p = np.concatenate(
        [np.linspace(edge - 1e-6, edge + 1e-6, 20_001) for edge in (0.02425, 1 - 0.02425)]
        + [np.linspace(2.0**-52, 1 - 2.0**-52, 100_001)]
    )
    p.sort()
    q = p - 0.5
    _inverse_normal_cdf(q, *(np.empty_like(q) for _ in range(3)))
    steps = np.diff(q)
    assert steps.min() > -1e-12
    assert np.count_nonzero(steps < 0) <= 2


def _normals_of_u52(u52: np.ndarray) -> np.ndarray:
    """The generator's normal of p = (u52 + 1/2) 2**-52, through the hashed-word entry."""
    return normals_from_bits(u52.astype(np.uint64) << np.uint64(12), np.empty(u52.size))


def test_normals_rise_with_p_across_cells_and_the_outer_junction():
    """Points 2**-40 apart in p around every cell edge (the cubics meet there; at cells 8 and
    1016 Acklam's formula meets them) and a fine grid over (0, 1): the normal rises at each."""
    edges = np.arange(1, 1024, dtype=np.int64) << 42
    around = (edges[:, None] + (np.arange(-64, 64) << 12)[None, :]).ravel()
    grid = np.linspace(0, 2**52 - 1, 300_001).astype(np.int64)
    for u52 in (around, np.unique(grid)):
        assert np.all(np.diff(_normals_of_u52(u52)) > 0)


def test_normals_are_within_2e_7_of_the_true_quantile():
    """Against statistics.NormalDist (Wichura's AS241, ~1e-16): every cell at both ends, its
    centre and 40 random places, and 20 random p in every octave of the tails down to 2**-52,
    are within 1.9e-7 (the cubics' worst case, at |z| near 2.4 and 2.65), and within 1e-8
    where |z| < 1.9."""
    rng = np.random.default_rng(7)
    cells = np.arange(1024, dtype=np.int64)
    offsets = np.concatenate([[0, 2**41, 2**42 - 1], rng.integers(0, 2**42, 40)])
    deep = np.concatenate([rng.integers(2**e, 2 ** (e + 1), 20) for e in range(42)])
    u52 = np.concatenate(
        [((cells[:, None] << 42) + offsets[None, :]).ravel(), deep, 2**52 - 1 - deep]
    )
    z = _normals_of_u52(u52)
    inverse = NormalDist().inv_cdf
    truth = np.array([inverse((k + 0.5) * 2.0**-52) for k in u52.tolist()])
    error = np.abs(z - truth)
    assert error.max() < 1.9e-7
    assert error[np.abs(truth) < 1.9].max() < 1e-8


# ---- statistics -----------------------------------------------------------------------------
def z_crit(alpha: float) -> float:
    """Two-sided standard normal critical value."""
    return NormalDist().inv_cdf(1 - alpha / 2)


def chi2_crit(df: int, alpha: float) -> float:
    """Upper chi-square quantile, Wilson-Hilferty approximation."""
    z = NormalDist().inv_cdf(1 - alpha)
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2_stat(counts: np.ndarray, expected: np.ndarray) -> float:
    return float(np.sum((counts - expected) ** 2 / expected))


def test_uniforms_lie_in_unit_interval_with_uniform_mean_and_variance():
    """n = 200k, alpha 1e-5 over the two: the mean is detected off by 0.0049 and the variance
    by 0.0013 around 1/12 (power 0.999)."""
    u = CounterRandom(17, np.arange(N)).uniform(12, Purpose.IMPROVEMENT_START)
    assert u.dtype == np.float64 and u.min() >= 0.0 and u.max() < 1.0
    z = z_crit(ALPHA / 2)
    assert abs(u.mean() - 0.5) < z * math.sqrt(1 / 12 / N)
    assert abs(u.var() - 1 / 12) < z * math.sqrt((1 / 80 - 1 / 144) / N)


def test_uniforms_of_every_purpose_pass_chi_square_in_coarse_and_low_bits():
    """Per purpose, 200k draws in 100 equal bins of u and in 128 bins of u's lowest 7 bits.

    Alpha 1e-5 over all 40 tests (Bonferroni); each detects, with power 0.99, bin
    probabilities off by 2.8 % (100 bins) or 2.9 % (128 bins) of their value, balanced.
    """
    crn = CounterRandom(29, np.arange(N))
    for purpose in Purpose:
        u = crn.uniform(int(purpose) * 7, purpose)
        coarse = np.bincount((u * 100).astype(np.int64), minlength=100)
        assert chi2_stat(coarse, np.full(100, N / 100)) < chi2_crit(99, ALPHA / 40), purpose
        low = np.bincount((u * 2.0**53).astype(np.int64) & 127, minlength=128)
        assert chi2_stat(low, np.full(128, N / 128)) < chi2_crit(127, ALPHA / 40), purpose


def _correlations_below_bound(pairs: list[tuple[np.ndarray, np.ndarray]], alpha: float) -> None:
    bound = z_crit(alpha / len(pairs)) / math.sqrt(N)
    for i, (x, y) in enumerate(pairs):
        r = np.corrcoef(x, y)[0, 1]
        assert abs(r) < bound, (i, r, bound)


def test_draws_are_uncorrelated_across_steps_ids_draws_seeds_and_variates():
    """Pearson r of 200k pairs: adjacent steps, adjacent ids, draw 0 vs 1, seed s vs s+1,
    uniform vs normal of one key, and steps 1 vs 2**19 + 1. Alpha 1e-5 over the six (bound
    |r| < 0.0107); a true |r| of 0.018 is detected with power 0.999."""
    ids = np.arange(N + 1)
    crn = CounterRandom(41, ids)
    u = crn.uniform(30, Purpose.DEATH)
    pairs = [
        (u[:-1], crn.uniform(31, Purpose.DEATH)[:-1]),
        (u[:-1], u[1:]),
        (u, crn.uniform(30, Purpose.DEATH, draw=1)),
        (u, CounterRandom(42, ids).uniform(30, Purpose.DEATH)),
        (u, crn.normal(30, Purpose.DEATH)),
        (crn.uniform(1, Purpose.DEATH), crn.uniform(2**19 + 1, Purpose.DEATH)),
    ]
    _correlations_below_bound(pairs, ALPHA)


def test_purposes_are_pairwise_uncorrelated():
    """All 190 pairs of purposes at one step, 200k patients: alpha 1e-5 over the pairs (bound
    |r| < 0.0122); a true |r| of 0.019 is detected with power 0.999."""
    crn = CounterRandom(43, np.arange(N))
    draws = np.array([crn.uniform(64, purpose) for purpose in Purpose])
    r = np.corrcoef(draws)[np.triu_indices(len(Purpose), 1)]
    assert np.max(np.abs(r)) < z_crit(ALPHA / r.size) / math.sqrt(N)


def test_adjacent_steps_are_jointly_uniform():
    """(u at step s, u at step s+1) in a 10 x 10 grid, 200k patients: catches a non-linear
    dependence a correlation misses; alpha 1e-5, power 0.99 against cell probabilities off
    by 2.6 % of their value in a balanced pattern."""
    crn = CounterRandom(47, np.arange(N))
    a = (crn.uniform(100, Purpose.TRANSITION) * 10).astype(np.int64)
    b = (crn.uniform(101, Purpose.TRANSITION) * 10).astype(np.int64)
    counts = np.bincount(a * 10 + b, minlength=100)
    assert chi2_stat(counts, np.full(100, N / 100)) < chi2_crit(99, ALPHA)


def test_normals_have_standard_mean_variance_and_distribution():
    """1M normals: mean, variance, and a chi-square over 100 equiprobable bins with the outer
    ones split at p = 1e-4 and 1e-3 (the tails' own formula). Alpha 1e-5 over the three; the
    mean is detected off by 0.0077 and the variance by 0.011 (power 0.999)."""
    n = 1_000_000
    z = CounterRandom(53, np.arange(n)).normal(7, Purpose.VISION_CHANGE)
    crit = z_crit(ALPHA / 3)
    assert abs(z.mean()) < crit / math.sqrt(n)
    assert abs(z.var() - 1.0) < crit * math.sqrt(2 / n)
    probabilities = [1e-4, 1e-3, *(k / 100 for k in range(1, 100)), 1 - 1e-3, 1 - 1e-4]
    edges = np.array([NormalDist().inv_cdf(p) for p in probabilities])
    counts = np.bincount(np.searchsorted(edges, z), minlength=edges.size + 1)
    expected = np.diff([0.0, *probabilities, 1.0]) * n
    assert chi2_stat(counts, expected) < chi2_crit(edges.size, ALPHA / 3)
