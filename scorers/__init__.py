"""Scorers: what turns model outputs into numbers (the interface is ``ckptgate.scores.Scorer``)."""
