"""`MergeSpec`: a merge node's synthesis, as written in YAML (or Python).

.. code-block:: yaml

    merge:
      strategy: tree_summarize          # a name in SYNTHESIZERS
      params: {fan_in: 3}               # validated by the strategy's Params model
      stages:                           # a routing policy per stage of the strategy
        leaf: {strategy: cheapest}
        root: {strategy: cheapest, min_tier: 3}

A bare name (``merge: vote``) is the strategy with its defaults. Errors name
the source and the field: ``graphs/g.yaml: merge: params.fan_in: Input should
be greater than or equal to 2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentmesh._validation import describe_errors
from agentmesh.routing.policy import Policy
from agentmesh.synthesis.base import Item, SynthesisContext, SynthesisResult, Synthesizer
from agentmesh.synthesis.registry import SYNTHESIZERS

__all__ = ["MergeSpec", "MergeSpecError"]


class MergeSpecError(ValueError):
    """A merge spec is invalid; the message names the source and the field."""


class MergeSpec(BaseModel):
    """How a merge node synthesizes its branches.

    Attributes:
        strategy: Name of the synthesizer (see ``SYNTHESIZERS``).
        params: The synthesizer's options (validated by its ``Params`` model).
        stages: Routing policy per stage (the synthesizer's ``stages``); a stage
            without one uses the node's policy.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, Policy] = Field(default_factory=dict)

    @field_validator("strategy")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SYNTHESIZERS:
            known = ", ".join(sorted(SYNTHESIZERS))
            raise ValueError(f"unknown synthesis strategy {value!r}; known: {known}")
        return value

    @model_validator(mode="after")
    def _fits_strategy(self) -> MergeSpec:
        cls = SYNTHESIZERS[self.strategy]
        try:
            cls.Params.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(describe_errors(exc, prefix="params")) from None
        for stage in self.stages:
            if stage not in cls.stages:
                known = ", ".join(cls.stages) or "none"
                raise ValueError(
                    f"stages.{stage}: {self.strategy} has no stage {stage!r}; its stages: {known}"
                )
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | str, *, source: str = "merge") -> MergeSpec:
        """Validate a YAML value (a mapping, or a bare strategy name).

        Raises:
            MergeSpecError: Unknown strategy, parameter or stage, or an invalid
                stage policy; the message names ``source`` and the field.
        """
        raw: Any = {"strategy": data} if isinstance(data, str) else data
        if not isinstance(raw, Mapping):
            raise MergeSpecError(
                f"{source}: a merge spec is a strategy name or a mapping "
                f"(strategy: ..., params: ..., stages: ...), got {type(raw).__name__}"
            )
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            raise MergeSpecError(f"{source}: {describe_errors(exc)}") from None

    def build(self) -> Synthesizer[Any]:
        """A synthesizer configured with ``params``."""
        cls = SYNTHESIZERS[self.strategy]
        return cls(cls.Params.model_validate(self.params))

    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Build the synthesizer and run it, the spec's stage policies over the context's.

        Raises:
            NothingToSynthesize: No item has text.
            SynthesisError: A step failed, with the partial provenance.
        """
        staged = replace(ctx, stages={**ctx.stages, **self.stages})
        return await self.build().synthesize(items, staged)
