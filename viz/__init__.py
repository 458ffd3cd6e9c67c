"""amdsim dashboard (Panel): live runs, registry and results explorer.

Empty until the dashboard lands.
"""

__all__: list[str] = []
