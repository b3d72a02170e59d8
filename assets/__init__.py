"""Data files of SpineSim (installed as ``simulator._assets``); each table names its source."""
