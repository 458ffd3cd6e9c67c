"""Paired comparison of protocols on the same simulated patients (docs/analysis.md)."""
