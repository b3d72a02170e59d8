"""Scenarios shipped with SpineSim (installed as ``simulator._scenarios``)."""
