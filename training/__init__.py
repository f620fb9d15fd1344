"""Offline work: data import, grading, fitting, calibration, evaluation and export."""
