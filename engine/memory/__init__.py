"""Memory safety: the real limit, the run's use against it, guards and estimates.

See DESIGN section 7 and docs/memory.md.
"""

from engine.memory.guard import check_memory_before, process_monitor
from engine.memory.limits import MemoryLimit, SystemProbe, detect_memory_limit
from engine.memory.monitor import MemoryLevel, MemoryMonitor, MemorySnapshot, Thresholds

__all__ = [
    "MemoryLevel",
    "MemoryLimit",
    "MemoryMonitor",
    "MemorySnapshot",
    "SystemProbe",
    "Thresholds",
    "check_memory_before",
    "detect_memory_limit",
    "process_monitor",
]
