"""Domain groups of the shared data, for leave-one-domain-out evaluation.

:data:`MMLU_GROUPS` maps each of MMLU's 57 subjects to the four groups of the
MMLU paper (Hendrycks et al., 2021; the ``categories.py`` of its repository):
STEM, humanities, social sciences, other (business, health, miscellaneous).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["MMLU_GROUPS", "mmlu_group"]

_BY_GROUP = {
    "stem": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics "
        "electrical_engineering elementary_mathematics high_school_biology high_school_chemistry "
        "high_school_computer_science high_school_mathematics high_school_physics "
        "high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history "
        "high_school_world_history international_law jurisprudence logical_fallacies "
        "moral_disputes moral_scenarios philosophy prehistory professional_law world_religions"
    ),
    "social_sciences": (
        "econometrics high_school_geography high_school_government_and_politics "
        "high_school_macroeconomics high_school_microeconomics high_school_psychology "
        "human_sexuality professional_psychology public_relations security_studies sociology "
        "us_foreign_policy"
    ),
    "other": (
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging "
        "management marketing medical_genetics miscellaneous nutrition professional_accounting "
        "professional_medicine virology"
    ),
}

MMLU_GROUPS: Mapping[str, str] = MappingProxyType(
    {subject: group for group, subjects in _BY_GROUP.items() for subject in subjects.split()}
)
"""MMLU subject (the ``domain`` column) -> its group of the MMLU paper.

The groups: ``stem``, ``humanities``, ``social_sciences``, ``other``."""


def mmlu_group(subject: str | None) -> str | None:
    """The group of an MMLU subject (``None`` for an unknown one)."""
    return MMLU_GROUPS.get(subject or "")
