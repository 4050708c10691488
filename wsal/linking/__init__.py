"""Linkers: per-frame boxes -> tubes (DESIGN §2). ``python -m wsal.linking`` runs them on files."""

from wsal.linking.linkers import TemporalPrimLinker
from wsal.linking.temporal_prim import temporal_prim, temporal_prim_batch

__all__ = ["TemporalPrimLinker", "temporal_prim", "temporal_prim_batch"]
