"""Instruments: per-layer statistics, the diagnosis, training reports and figures."""
from .diagnose import Diagnosis, Finding, build_diagnosis, symmetric_units
from .report import Report

__all__ = ["Diagnosis", "Finding", "Report", "build_diagnosis", "symmetric_units"]
