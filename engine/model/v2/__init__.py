"""The time-based model (v2, DESIGN section 4b): common random numbers, tables and kernel."""
