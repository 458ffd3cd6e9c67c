"""Calibration: targets from published studies, the figures the model gives for them, the fit."""
