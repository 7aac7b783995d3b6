"""Churn and value models fitted on order history: BG/NBD P(alive) and Gamma-Gamma CLV.

Fitting (numpy/scipy, offline) lives in `bgnbd`, `gamma_gamma` and `history`; the stream
uses `model.score`, a pure scalar function of a `Model` and a customer's summary.
See docs/models.md.
"""
