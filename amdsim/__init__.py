"""The `amdsim` package name: `python -m amdsim` runs the command line.

The code lives in `engine` (model, runs, results, CLI), `ipc` (channels, metrics) and `viz`
(dashboard); this package only gives the command line the project's own name, so that
`python -m amdsim ...` works wherever the `amdsim` console script would.
"""

__all__: list[str] = []
