"""amdsim inter-process communication: the shared-memory channel and the metrics stream.

Empty until the streaming run lands; the in-process runner needs neither.
"""

__all__: list[str] = []
