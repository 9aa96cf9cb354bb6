"""Scorers: what turns model outputs into numbers (see ``scorers.base.Scorer``)."""

from scorers.base import MetricValue, Scorer, ScoreResult

__all__ = ["MetricValue", "ScoreResult", "Scorer"]
