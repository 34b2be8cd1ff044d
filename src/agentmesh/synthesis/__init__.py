"""Synthesis at merge nodes: many branch results in, one answer out, with provenance.

Five strategies behind one small contract (:class:`Synthesizer`):
:class:`Refine`, :class:`Compact`, :class:`Vote`, :class:`TreeSummarize` and
:class:`BestOfN`, each usable from Python and, through :class:`MergeSpec` and
the :data:`SYNTHESIZERS` registry, from YAML merge nodes. Every LLM step is
routed on its own (a policy per stage), goes through the shared resilient
caller, and is recorded; the :class:`SynthesisResult` says which branches and
models contributed, how votes went, and what the synthesis cost.
"""

from agentmesh.synthesis.base import (
    ATTR_ITEMS,
    ATTR_LEVEL,
    ATTR_STAGE,
    ATTR_STRATEGY,
    Contributor,
    Item,
    NoParams,
    NothingToSynthesize,
    Provenance,
    StepRecord,
    SynthesisContext,
    SynthesisError,
    SynthesisParams,
    SynthesisResult,
    Synthesizer,
    prepare_items,
)
from agentmesh.synthesis.extract import (
    EXTRACTORS,
    ChoiceExtractor,
    ExactExtractor,
    Extractor,
    NumberExtractor,
    ShortAnswerExtractor,
)
from agentmesh.synthesis.judge import BestOfN, BestOfNParams, Pick, parse_pick
from agentmesh.synthesis.pack import Piece, split_text
from agentmesh.synthesis.prompts import PICK_BEST_SCHEMA, StepPrompt
from agentmesh.synthesis.registry import SYNTHESIZERS, build_synthesizer
from agentmesh.synthesis.run import Room, SynthesisRun
from agentmesh.synthesis.sequential import Compact, CompactParams, Refine
from agentmesh.synthesis.spec import MergeSpec, MergeSpecError
from agentmesh.synthesis.tree import TreeParams, TreeSummarize
from agentmesh.synthesis.vote import TIE_BREAKS, WEIGHTINGS, Vote, VoteParams

__all__ = [
    "ATTR_ITEMS",
    "ATTR_LEVEL",
    "ATTR_STAGE",
    "ATTR_STRATEGY",
    "EXTRACTORS",
    "PICK_BEST_SCHEMA",
    "SYNTHESIZERS",
    "TIE_BREAKS",
    "WEIGHTINGS",
    "BestOfN",
    "BestOfNParams",
    "ChoiceExtractor",
    "Compact",
    "CompactParams",
    "Contributor",
    "ExactExtractor",
    "Extractor",
    "Item",
    "MergeSpec",
    "MergeSpecError",
    "NoParams",
    "NothingToSynthesize",
    "NumberExtractor",
    "Pick",
    "Piece",
    "Provenance",
    "Refine",
    "Room",
    "ShortAnswerExtractor",
    "StepPrompt",
    "StepRecord",
    "SynthesisContext",
    "SynthesisError",
    "SynthesisParams",
    "SynthesisResult",
    "SynthesisRun",
    "Synthesizer",
    "TreeParams",
    "TreeSummarize",
    "Vote",
    "VoteParams",
    "build_synthesizer",
    "parse_pick",
    "prepare_items",
    "split_text",
]
