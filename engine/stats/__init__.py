"""Streaming statistics of a run: exact where values are small integers, sketched elsewhere."""
