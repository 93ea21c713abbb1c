"""Instruments: per-layer statistics, the diagnosis, training reports and figures."""
from .diagnose import Diagnosis
from .report import Report

__all__ = ["Diagnosis", "Report"]
