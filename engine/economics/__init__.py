"""Health economics of a paired comparison: unit costs, utilities and cost-effectiveness.

- `engine.economics.costs`: cost files (amdsim's layout and the origin app's) -> `CostFile`;
- `engine.economics.utilities`: utility by better-seeing-eye VA band -> `UtilityTable`;
- `engine.economics.cost_effectiveness`: ICER, Fieller interval, net monetary benefit and
  dominance from the moments of per-patient differences (second arm minus first).

The bundled defaults (``defaults/``) are UK NHS figures; docs/economics.md cites every number.
Discounting and the counting of visits, injections and QALYs are the simulation's job.
"""
