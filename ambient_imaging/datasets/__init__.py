"""Measurement datasets: files in, ``(measurements, operator)`` out."""

from .batch import MeasurementBatch, collate_measurements

__all__ = ["MeasurementBatch", "collate_measurements"]
