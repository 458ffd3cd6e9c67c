"""Tests of engine.calibration."""
