"""Common random numbers for the time-based model: every draw a pure function of its key.

Scheme (DESIGN section 3; the manifest records it as `SCHEME`)
---------------------------------------------------------------
A draw is a keyed hash, not the next number of a stream. With ``mix64`` the finaliser of
SplitMix64 (Stafford's "Mix13": xor-shift 30, multiply, xor-shift 27, multiply, xor-shift 31,
all modulo 2**64), and every sum and product below modulo 2**64::

    seed_word    = mix64(seed ^ SEED_SALT)
    patient_key  = mix64(seed_word ^ mix64(patient_id * GOLDEN + ID_SALT))
    counter      = step | purpose << 20 | draw << 28 | variate << 36
    counter_word = mix64(counter * GOLDEN + COUNTER_SALT)
    bits         = mix64(patient_key + counter_word)

``variate`` is 0 for `CounterRandom.uniform` and 1 for `CounterRandom.normal`, so the two
never share bits. A uniform is ``(bits >> 11) * 2**-53``: 53 bits, in [0, 1). A normal is
the standard normal quantile of ``p = (bits >> 12) * 2**-52 + 2**-53``, in (0, 1), computed
in one of two ways chosen by the cell ``i = bits >> 54`` (the top 10 bits; 1024 cells of p):

* the 1008 inner cells (``8 <= i < 1016``, p within 1/128 .. 127/128): a cubic in
  ``f = (((bits >> 12) & (2**42 - 1)) + 1/2) * 2**-42``, the position of p inside its cell,
  through Acklam's quantile (rational approximation, relative error below 1.2e-9; see
  `_inverse_normal_cdf`) at the cell's points ``f = 0, 1/3, 2/3, 1``:
  ``((c3 f + c2) f + c1) f + c0`` (`_cell_cubics` gives the coefficients' exact formula);
* the 16 outer cells (1.6 % of the draws): t = min(p, 1 - p) = w 2**-53 with w odd below
  2**46, and a cubic in the position inside one eighth of w's octave, through Acklam's
  tail formula of t at its points; the upper tail is the lower one's negative
  (`_octave_cubics`).

The largest error against the true quantile is 1.9e-7 (z near +/-2.4 and 2.65; below 1e-8
for |z| < 1.9), far below anything the model resolves (VA is measured in whole letters).
No division, logarithm or square root per draw, and no separate pass for the tails: four
table lookups and a Horner step. On a whole block (32,768 rows) that costs about what
Acklam's formula did (the lookups are the dearest part); on the small arrays of visit
sub-steps and improvement phases it is about 25 % cheaper, and the time-based kernel ran
about 6 % faster with it (issue 11). The tables are computed at import from Acklam's
formulas with correctly rounded operations only, so they are the same bits everywhere.

Why counter-based: a patient meets the same number for the same purpose at the same
fortnight under every protocol (common random numbers: differences between protocols are not
drowned in sampling noise), a patient's draws do not depend on which other patients share
its array, so rows do not depend on shard or block size, and any draw can be recomputed
alone. Only numpy integer operations (shift, xor, wrapping uint64 multiply and add) and
IEEE 754 correctly rounded float operations (+, -, *, /, sqrt, int-to-float) are used; the
logarithm the normal tails need is computed here from `np.frexp` and a polynomial rather
than `np.log`, whose last bit differs between numpy's SIMD paths. So the numbers depend on
nothing but the key: not the numpy version, the CPU, nor the order of calls.
``tests/engine/test_random_numbers.py`` re-implements the scheme in plain Python integers
and floats and checks known answers bit for bit.

Contract: `Purpose` values, the salts, the bit layout of ``counter`` and the formulas above
are part of the reproducibility contract of format-2 runs. Never renumber a purpose or
change a formula; add a purpose with a new number, and change the scheme only together with
`SCHEME`.

Speed: the per-patient keys are computed once per block (`CounterRandom.__init__`); a
uniform then costs one add of a scalar, the eight ufunc passes of ``mix64`` and the
conversion, all in place in preallocated buffers; a normal about four uniforms
(``perf/bench_random.py`` compares both with PCG64).
"""

from __future__ import annotations

import enum

import numpy as np
import numpy.typing as npt

__all__ = ["SCHEME", "CounterRandom", "Purpose", "normals_from_bits", "uniforms_from_bits"]

SCHEME = (
    "amdsim-crn-2 (SplitMix64-keyed hash of seed, patient id, step, purpose, draw;"
    " normals by cubic cells of the quantile through Acklam's values)"
)

MAX_PATIENT_ID = 2**40 - 1
MAX_STEP = 2**20 - 1
MAX_DRAW = 2**8 - 1

_MASK64 = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, SplitMix64's increment
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB
# Fraction digits of pi (0x243F6A88...) in 64-bit words: arbitrary, public, fixed.
_SEED_SALT = 0x243F6A8885A308D3
_ID_SALT = 0x13198A2E03707344
_COUNTER_SALT = 0xA4093822299F31D0

_UNIFORM, _NORMAL = 0, 1


class Purpose(enum.IntEnum):
    """What a draw is for; its value is part of the key. Never renumber, never reuse a value."""

    ENROLMENT = 1
    AGE_BAND = 2
    AGE_WITHIN_BAND = 3
    SEX = 4
    BASELINE_VISION = 5
    RESPONDER = 6
    DEATH = 7
    TRANSITION = 8
    IMPROVEMENT_START = 9
    IMPROVEMENT_RATE = 10
    VISION_CHANGE = 11
    HAEMORRHAGE = 12
    HAEMORRHAGE_LOSS = 13
    MEASUREMENT_NOISE = 14
    DISCONTINUE_POOR_VISION = 15
    DISCONTINUE_DETERIORATION = 16
    DISCONTINUE_STABLE = 17
    DISCONTINUE_NO_IMPROVEMENT = 18
    DISCONTINUE_ATTRITION = 19
    DISCONTINUE_ADMINISTRATIVE = 20
    GAIN_FACTOR = 21
    FELLOW_EYE_BETTER = 22  # comparisons: is the treated eye the better-seeing eye
    FELLOW_EYE_BAND = 23  # comparisons: the fellow eye's VA band
    SECOND_EYE_ONSET = 24  # comparisons: when the fellow eye needs treatment too


def _mix64(z: int) -> int:
    """SplitMix64's finaliser on one Python int (for scalar words)."""
    z = ((z ^ (z >> 30)) * _MIX_1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX_2) & _MASK64
    return z ^ (z >> 31)


_U30, _U27, _U31 = np.uint64(30), np.uint64(27), np.uint64(31)
_U11, _U12 = np.uint64(11), np.uint64(12)
_U1, _U54 = np.uint64(1), np.uint64(54)
_CELL_BITS = 10  # the top bits choose the cell of p: 1024 cells
_TAIL_CELLS = 8  # outer cells on either side computed by Acklam's formula
_U_TAIL = np.uint64(_TAIL_CELLS)
_INNER_CELLS = 2**_CELL_BITS - 2 * _TAIL_CELLS
_U_INNER = np.uint64(_INNER_CELLS)
_U_F_MASK = np.uint64(2**43 - 1)
_OCTAVE_BITS = 3  # an outer cell's octave of min(p, 1 - p) is cut into 8 parts
_OCTAVE_PARTS = 46 << _OCTAVE_BITS  # octaves 0..45
_LOWER_OFFSET = _INNER_CELLS - (1023 << _OCTAVE_BITS)  # table entry of part 0, less the bias
_UPPER_OFFSET = _LOWER_OFFSET + _OCTAVE_PARTS
_U_HALF, _U_TOP = np.uint64(2**51), np.uint64(2**52 - 1)
_M1, _M2 = np.uint64(_MIX_1), np.uint64(_MIX_2)


def _mix64_inplace(x: npt.NDArray[np.uint64], tmp: npt.NDArray[np.uint64]) -> None:
    """`_mix64` on every element of `x`, in place; `tmp` is scratch of the same shape.

    numpy's uint64 array multiply wraps modulo 2**64 without a warning (only numpy scalars
    warn), which is the arithmetic the scheme defines.
    """
    np.right_shift(x, _U30, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    np.multiply(x, _M1, out=x)
    np.right_shift(x, _U27, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    np.multiply(x, _M2, out=x)
    np.right_shift(x, _U31, out=tmp)
    np.bitwise_xor(x, tmp, out=x)


def _counter_word(step: int, purpose: Purpose, draw: int, variate: int) -> np.uint64:
    """The hashed word of (step, purpose, draw, variate), after checking their ranges."""
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"step must be in 0..{MAX_STEP}, got {step}")
    if not 0 <= draw <= MAX_DRAW:
        raise ValueError(f"draw must be in 0..{MAX_DRAW}, got {draw}")
    counter = step | Purpose(purpose) << 20 | draw << 28 | variate << 36
    return np.uint64(_mix64((counter * _GOLDEN + _COUNTER_SALT) & _MASK64))


def _patient_keys(seed: int, patient_ids: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """``patient_key`` of the module docstring for every id."""
    seed_word = np.uint64(_mix64(seed ^ _SEED_SALT))
    keys = patient_ids.astype(np.uint64)
    tmp = np.empty_like(keys)
    np.multiply(keys, np.uint64(_GOLDEN), out=keys)
    np.add(keys, np.uint64(_ID_SALT), out=keys)
    _mix64_inplace(keys, tmp)
    np.bitwise_xor(keys, seed_word, out=keys)
    _mix64_inplace(keys, tmp)
    return keys


class CounterRandom:
    """Keyed uniforms and normals for the patients of one block (see the module docstring).

    `patient_ids` are the block's global ids (0..2**40-1, any order, repeats allowed); `rows`
    arguments are positions in that array. Nothing here has state that a draw changes: the
    same call returns the same numbers, whatever was drawn before.
    """

    def __init__(self, seed: int, patient_ids: npt.ArrayLike) -> None:
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
        ids = np.asarray(patient_ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError("patient_ids must be a one-dimensional array of integers")
        if ids.size and not (ids.min() >= 0 and ids.max() <= MAX_PATIENT_ID):
            raise ValueError(f"patient ids must be in 0..{MAX_PATIENT_ID}")
        self.seed = seed
        self.patient_ids = ids
        self._keys = _patient_keys(seed, ids)
        self._work = np.empty_like(self._keys)
        self._tmp = np.empty_like(self._keys)
        self._floats: tuple[npt.NDArray[np.float64], ...] | None = None

    def __len__(self) -> int:
        return self._keys.size

    def _bits(
        self, step: int, purpose: Purpose, rows: npt.ArrayLike | None, draw: int, variate: int
    ) -> npt.NDArray[np.uint64]:
        """``bits`` for the patients at `rows` (all when None), in a scratch buffer."""
        word = _counter_word(step, purpose, draw, variate)
        if rows is None:
            work, tmp = self._work, self._tmp[: self._work.size]
            np.add(self._keys, word, out=work)
        else:
            rows = np.asarray(rows)
            if rows.ndim != 1 or rows.dtype.kind not in "iu":
                raise TypeError(f"rows must be a 1-d array of integer positions, got {rows.dtype}")
            work = np.take(self._keys, rows)  # bounds-checked; a fresh array to work in
            if work.size > self._tmp.size:  # rows repeat positions: grow the scratch
                self._tmp = np.empty_like(work)
            tmp = self._tmp[: work.size]
            np.add(work, word, out=work)
        _mix64_inplace(work, tmp)
        return work

    def uniform(
        self,
        step: int,
        purpose: Purpose,
        rows: npt.ArrayLike | None = None,
        draw: int = 0,
        out: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Uniforms in [0, 1) with 53 random bits, one per patient at `rows` (all when None).

        `draw` (0..255) tells apart several numbers one purpose needs at one step. `out`, if
        given, receives the numbers (float64, one per row) and is returned.
        """
        bits = self._bits(step, purpose, rows, draw, _UNIFORM)
        return uniforms_from_bits(bits, out)

    def normal(
        self,
        step: int,
        purpose: Purpose,
        rows: npt.ArrayLike | None = None,
        draw: int = 0,
        out: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Standard normals, one per patient at `rows` (all when None); see `uniform`.

        The inverse CDF of a keyed uniform, so one key gives one normal (Box-Muller would
        need a second uniform and `np.cos`), and the result lies within +/-8.3.
        """
        bits = self._bits(step, purpose, rows, draw, _NORMAL)
        if out is None:
            out = np.empty(bits.size)
        if self._floats is None or self._floats[0].size < out.size:
            self._floats = tuple(np.empty(max(out.size, self._keys.size)) for _ in range(2))
        cell = self._tmp[: bits.size]  # the scratch `_bits` used is free again
        normals_from_bits(bits, out, cell, *(f[: out.size] for f in self._floats))
        return out


def uniforms_from_bits(
    bits: npt.NDArray[np.uint64], out: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]:
    """Uniforms in [0, 1) from hashed words (any shape): their top 53 bits, scaled exactly.

    `bits` is overwritten. `out`, if given, receives the numbers and is returned.
    """
    np.right_shift(bits, _U11, out=bits)
    if out is None:
        out = np.empty(bits.shape)
    # Below 2**53, so the int64 view is the same number and converts exactly (a plain cast
    # is faster than a multiply with a casting input); the scaling is exact too.
    np.copyto(out, bits.view(np.int64), casting="unsafe")
    np.multiply(out, 2.0**-53, out=out)
    return out


def normals_from_bits(
    bits: npt.NDArray[np.uint64],
    out: npt.NDArray[np.float64],
    cell: npt.NDArray[np.uint64] | None = None,
    a: npt.NDArray[np.float64] | None = None,
    b: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """The standard normal of each hashed word in `bits` (see the module docstring) into `out`.

    `bits` is overwritten; `cell`, `a` and `b` are optional scratch of its shape. Shared with
    the per-row-step draws of `engine.model.v2.draws`, so the formula lives in one place.
    """
    n = bits.size
    cell = np.empty_like(bits) if cell is None else cell
    a = np.empty(n) if a is None else a
    b = np.empty(n) if b is None else b
    np.right_shift(bits, _U54, out=cell)
    # Position among the inner cells; wraps to a huge number below them (uint64).
    np.subtract(cell, _U_TAIL, out=cell)
    outer = np.flatnonzero(cell >= _U_INNER)
    index = cell.view(np.int64)
    # f's 42 bits, doubled and made odd: (2 low + 1) * 2**-43 = (low + 1/2) * 2**-42, exact.
    if outer.size:
        outer_index, outer_f = _outer_parts(bits[outer] >> _U12)
    np.right_shift(bits, _U11, out=bits)
    np.bitwise_and(bits, _U_F_MASK, out=bits)
    np.bitwise_or(bits, _U1, out=bits)
    np.copyto(out, bits.view(np.int64), casting="unsafe")
    np.multiply(out, 2.0**-43, out=out)
    if outer.size:  # their own part of the table and position in it
        index[outer] = outer_index
        out[outer] = outer_f
    c0, c1, c2, c3 = _CUBICS
    np.take(c3, index, out=a)
    np.multiply(a, out, out=a)
    np.take(c2, index, out=b)
    np.add(a, b, out=a)
    np.multiply(a, out, out=a)
    np.take(c1, index, out=b)
    np.add(a, b, out=a)
    np.multiply(a, out, out=a)
    np.take(c0, index, out=b)
    np.add(a, b, out=out)
    return out


# Acklam's rational approximation of the inverse normal CDF (P. J. Acklam, 2003, "An
# algorithm for computing the inverse normal cumulative distribution function"): relative
# error < 1.15e-9 over (0, 1), which no simulated quantity resolves.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01, 1.0)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00, 1.0)  # fmt: skip
_P_LOW = 0.02425
_R_TAIL = (0.5 - _P_LOW) ** 2  # q*q above this: the tails, |q| > 0.47575
_LN2 = 0.6931471805599453
_SQRT_HALF = 0.7071067811865476
_LOG_TERMS = tuple(1.0 / k for k in range(15, 1, -2))  # 1/15, 1/13, ..., 1/3


def _inverse_normal_cdf(
    q: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    num: npt.NDArray[np.float64],
    den: npt.NDArray[np.float64],
) -> None:
    """Replace q = p - 1/2 by the standard normal quantile of p, in place (Acklam).

    `r`, `num` and `den` are scratch of q's shape. Only correctly rounded operations are
    used, so the result is the same bits on every machine.
    """
    np.multiply(q, q, out=r)
    tail = np.flatnonzero(r > _R_TAIL)
    tail_q = q[tail]
    _horner(r, _A, num)
    _horner(r, _B, den)
    np.multiply(q, num, out=q)
    np.divide(q, den, out=q)
    q[tail] = _normal_tail(tail_q)


def _outer_parts(
    u52: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Table entries and positions f of outer-cell draws from their 52 bits of p.

    See `_octave_cubics`; the upper tail's entries are the lower tail's, negated, after them.
    """
    upper = u52 >= _U_HALF
    v = np.where(upper, _U_TOP - u52, u52)  # p or 1 - p is (v + 1/2) 2**-52, v < 2**45
    v <<= _U1
    v |= _U1  # w = 2 v + 1: t = w 2**-53
    word = v.astype(np.float64).view(np.int64)  # exact: w < 2**46
    # Biased exponent 1023 + e (2**e <= w < 2**(e + 1)) and the top mantissa bits: the part.
    index = word >> (52 - _OCTAVE_BITS)
    index += np.where(upper, _UPPER_OFFSET, _LOWER_OFFSET)
    word &= 2 ** (52 - _OCTAVE_BITS) - 1
    f = word.astype(np.float64)
    f *= 2.0 ** (_OCTAVE_BITS - 52)
    return index, f


def _horner(
    x: npt.NDArray[np.float64], coefficients: tuple[float, ...], out: npt.NDArray[np.float64]
) -> None:
    """out = c0 x^(n-1) + ... + c(n-1), highest power first, evaluated by Horner's rule."""
    np.multiply(x, coefficients[0], out=out)
    for c in coefficients[1:-1]:
        np.add(out, c, out=out)
        np.multiply(out, x, out=out)
    np.add(out, coefficients[-1], out=out)


def _normal_tail(q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Quantile for |q| > 0.47575 (p in the outer 2.425 % on either side)."""
    return np.copysign(_tail_of_t(0.5 - np.abs(q)), q)  # t = min(p, 1 - p), exact


def _tail_of_t(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Acklam's tail formula of t = min(p, 1 - p) < 0.02425 (its sign is not to be used)."""
    s = np.sqrt(-2.0 * _log(t))
    num, den = np.empty_like(s), np.empty_like(s)
    _horner(s, _C, num)
    _horner(s, _D, den)
    return num / den


def _log(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Natural logarithm of positive `t` < 1/2 from frexp and the atanh series.

    t = m 2**e; log(m) = 2 atanh(s), s = (m - 1)/(m + 1), with m in [sqrt(1/2), sqrt(2)) so
    |s| < 0.172 and the series' first eight terms leave an error below 4e-14 in log(m), under
    1e-14 of log(t) here (|log t| > 0.69), far inside Acklam's 1.15e-9.
    """
    m, e = np.frexp(t)
    low = m < _SQRT_HALF
    m *= 1.0 + low  # doubles m where low: exact, cheaper than indexing
    e -= low
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = s2 * _LOG_TERMS[0] + _LOG_TERMS[1]
    for term in _LOG_TERMS[2:]:
        series = series * s2 + term
    series = series * s2 + 1.0
    return e * _LN2 + 2.0 * s * series


def _cell_cubics() -> tuple[npt.NDArray[np.float64], ...]:
    """Coefficients (c0, c1, c2, c3) of every cell's cubic in f (module docstring).

    Cell i's points are ``y_j = acklam(((i + j/3) * 2**-10) - 1/2)`` for j = 0..3 (with j/3
    the rounded double), its forward differences ``d1 = y1 - y0``, ``d2 = (y2 - y1) - d1``,
    ``d3 = ((y3 - y2) - (y2 - y1)) - d2``, and, from Newton's form in s = 3 f,
    ``c0 = y0``, ``c1 = (d1 - 0.5 d2 + d3 / 3) * 3``, ``c2 = (d2 - d3) * 4.5``,
    ``c3 = d3 * 4.5``: correctly rounded operations only, so the table is the same bits on
    every machine. Entry 0 is cell `_TAIL_CELLS`: the outer cells have none.
    """
    cells = np.arange(_TAIL_CELLS, 2**_CELL_BITS - _TAIL_CELLS, dtype=np.float64)
    y = []
    for j in range(4):
        q = (cells + j / 3) * 2.0**-_CELL_BITS - 0.5
        _inverse_normal_cdf(q, *(np.empty_like(q) for _ in range(3)))
        y.append(q)
    y0, y1, y2, y3 = y
    return _cubic_coefficients(y0, y1, y2, y3)


def _cubic_coefficients(*y: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """(c0, c1, c2, c3) of the cubic in f through y0..y3 at f = 0, 1/3, 2/3, 1 (Newton)."""
    y0, y1, y2, y3 = y
    d1 = y1 - y0
    d2 = (y2 - y1) - d1
    d3 = ((y3 - y2) - (y2 - y1)) - d2
    c1 = (d1 - 0.5 * d2 + d3 / 3) * 3
    return (y0, c1, (d2 - d3) * 4.5, d3 * 4.5)


def _octave_cubics() -> tuple[npt.NDArray[np.float64], ...]:
    """Coefficients of the outer cells' cubics: min(p, 1 - p) = t = w 2**-53, w odd < 2**46.

    Part k = e * 8 + j covers ``w = 2**e (1 + (j + f) / 8)``, f in [0, 1), of octave e
    (0..45). Its points are ``y_x = -acklam_tail(t_x)`` with
    ``t_x = (1 + (j + x) * 2**-3) * 2**(e - 53)`` for x = 0, 1/3, 2/3, 1 (Acklam's tail
    formula on t itself, which p - 1/2 could not carry), and the coefficients follow from
    them as in `_cell_cubics`. The lower tail is the cubic, the upper one its negative.
    """
    parts = np.arange(_OCTAVE_PARTS)
    j = (parts & (2**_OCTAVE_BITS - 1)).astype(np.float64)
    scale = np.ldexp(1.0, (parts >> _OCTAVE_BITS) - 53)  # exact powers of two
    y0, y1, y2, y3 = (
        -np.abs(_tail_of_t((1 + (j + x) * 2.0**-_OCTAVE_BITS) * scale))
        for x in (0, 1 / 3, 2 / 3, 1)
    )
    return _cubic_coefficients(y0, y1, y2, y3)


# One table: the inner cells, the lower tail's parts, the upper tail's (negated: exactly the
# negative of the lower tail's value, rounding being symmetric).
_CUBICS = tuple(
    np.concatenate([inner, lower, -lower])
    for inner, lower in zip(_cell_cubics(), _octave_cubics(), strict=True)
)
