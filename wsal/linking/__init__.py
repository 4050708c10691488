"""Linkers: per-frame boxes -> tubes (DESIGN §2). ``python -m wsal.linking`` runs them on files.

``temporal_prim`` (STIL §3.2), ``viterbi`` (Gkioxari & Malik 2015), ``actor`` (Guess Where? Alg. 1,
detections + the SiamFC tracker of :mod:`wsal.linking.siamfc`, given its network from
:mod:`wsal.nets.siamfc`).
"""

from wsal.linking.actor import ActorLinker, actor_link
from wsal.linking.base import BatchedLinker, Linker, link
from wsal.linking.cache import link_cached, tubes_to_detections
from wsal.linking.temporal_prim import TemporalPrimLinker, temporal_prim, temporal_prim_batch

# the function ``viterbi`` is not re-exported: it would shadow the module ``wsal.linking.viterbi``
# that configs name in ``_target_: wsal.linking.viterbi.ViterbiLinker``
from wsal.linking.viterbi import ViterbiLinker, viterbi_batch

__all__ = [
    "ActorLinker",
    "BatchedLinker",
    "Linker",
    "TemporalPrimLinker",
    "ViterbiLinker",
    "actor_link",
    "link",
    "link_cached",
    "temporal_prim",
    "temporal_prim_batch",
    "tubes_to_detections",
    "viterbi_batch",
]
