"""PSA draws: a price-only draw served from the base simulation equals simulating it again."""

from __future__ import annotations

import numpy as np

from engine.compare.psa_run import DrawPlan, finished_rows, run_psa_draws
from engine.compare.runner import ArmSpec, CompareSpec, run_blocks, write_spec
from engine.compare.valuation import arm_weights, eye_bands, eye_settings
from engine.model.parameters import RunParameters, validate_parameters
from engine.model.protocol_loader import load_protocol

ALTAIR = "aflibercept_treat_and_extend_altair"
VIEW_2Q8 = "aflibercept_2q8_view"
BANDS = eye_bands(
    [0.0, 20.0, 50.0, 65.0, 80.0], [0.4, 0.52, 0.57, 0.81, 0.89], [0.1, 0.2, 0.3, 0.2, 0.2], 35.0
)


def _spec() -> CompareSpec:
    params = validate_parameters(
        RunParameters(n_patients=6000, years=3.0, seed=21, shard_size=1000)
    )
    return CompareSpec(
        arms=[
            ArmSpec(name=name, source=name, protocol=load_protocol(name))
            for name in (VIEW_2Q8, ALTAIR)
        ],
        params=params,
        eye=eye_settings(BANDS, 0.35, 0.035, 0.035),
        shards_per_block=2,
    )


def _weights(drug: float, blindness: float, utility_scale: float = 1.0):
    bands = (
        BANDS
        if utility_scale == 1.0
        else eye_bands(
            [0.0, 20.0, 50.0, 65.0, 80.0],
            [u * utility_scale for u in (0.4, 0.52, 0.57, 0.81, 0.89)],
            [0.1, 0.2, 0.3, 0.2, 0.2],
            35.0,
        )
    )
    visit_costs = {"loading_injection": 174.0, "injection": 319.0, "monitoring": 185.0}
    return [arm_weights(bands, visit_costs, drug, 12.0, 50.0, blindness, 250.0) for _ in range(2)]


def test_a_price_only_draw_equals_the_same_draw_simulated_again(tmp_path) -> None:
    spec = _spec()
    write_spec(tmp_path / "cmp", spec)
    base = run_blocks(tmp_path / "cmp", spec, workers=1)
    plans_reused = [
        DrawPlan(
            d, None, _weights(500.0 + 100 * d, 6000.0 + d, 1 - 0.01 * d), {"drug": 500.0 + 100 * d}
        )
        for d in range(3)
    ]
    plans_simulated = [DrawPlan(p.draw, spec, p.weights, p.parameters) for p in plans_reused]
    reused = run_psa_draws(tmp_path / "cmp", base, plans_reused, workers=1)
    simulated = run_psa_draws(tmp_path / "other", base, plans_simulated, workers=2)
    for a, b in zip(reused, simulated, strict=True):
        assert not a.resimulated and b.resimulated
        assert a.cost == b.cost and a.qalys == b.qalys
        assert a.incremental_cost == b.incremental_cost
        assert a.incremental_qalys == b.incremental_qalys
        assert a.incremental_cost_se == b.incremental_cost_se
    # Draws differ by their prices exactly as the weights say: the drug price is per injection.
    injections = [
        arm.features.linear(w.injections)[0]
        for arm, w in zip(base.arms, plans_reused[0].weights, strict=True)
    ]
    assert reused[0].cost[0] < reused[1].cost[0] < reused[2].cost[0]
    assert np.all(np.diff([r.qalys[1] for r in reused]) < 0)
    assert injections[0] > 0


def test_rows_on_disk_are_kept_and_temporary_files_dropped(tmp_path) -> None:
    spec = _spec()
    write_spec(tmp_path / "cmp", spec)
    base = run_blocks(tmp_path / "cmp", spec, workers=1)
    plans = [DrawPlan(d, None, _weights(800.0 + d, 6000.0), {}) for d in range(4)]
    first = run_psa_draws(tmp_path / "cmp", base, plans, workers=1)
    (tmp_path / "cmp" / "psa" / "draw-000002.json").unlink()
    (tmp_path / "cmp" / "psa" / "draw-000009.json.tmp-123").write_bytes(b"half")
    assert sorted(finished_rows(tmp_path / "cmp")) == [0, 1, 3]
    assert not list((tmp_path / "cmp" / "psa").glob("*.tmp*"))
    again = run_psa_draws(tmp_path / "cmp", base, plans, workers=1)
    assert again == first
