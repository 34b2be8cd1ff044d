"""The routing matrix: task x model -> quality estimate, with counts.

An estimate blends the catalog's prior for the task (``quality:`` in the
catalog) with what judges observed, as a Beta-style weighted mean::

    estimate = (prior * prior_weight + sum_of_scores) / (prior_weight + count)

so a prior counts like ``prior_weight`` observations and real scores take over
as they accumulate. Observations live in the :class:`RoutingState` (shared
across processes); the matrix itself only holds the configuration, and saves
or loads the observations as a JSON file::

    {"format": "agentmesh-routing-matrix", "version": 1, "prior_weight": 5,
     "cells": {"math": {"sim-mini": {"mean": 0.62, "count": 40}}}}
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.state import QualityCell, RoutingState

__all__ = ["MatrixError", "RoutingMatrix"]

_FORMAT = "agentmesh-routing-matrix"
_PRIOR_WEIGHT = 5.0


class MatrixError(ValueError):
    """A routing-matrix file is unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class RoutingMatrix:
    """How quality estimates are computed.

    Attributes:
        prior_weight: How many observations the catalog prior is worth.
        default_prior: Prior for a model with no ``quality`` entry at all.
    """

    prior_weight: float = _PRIOR_WEIGHT
    default_prior: float = 0.5

    def prior(self, spec: ModelSpec, task: str | None) -> float:
        """The catalog prior for ``task`` (or ``default``), else ``default_prior``."""
        found = spec.quality_for(task)
        return self.default_prior if found is None else found

    def estimate(self, spec: ModelSpec, task: str | None, cell: QualityCell | None) -> float:
        """Quality estimate in [0, 1] for ``spec`` on ``task``."""
        prior = self.prior(spec, task)
        if cell is None or cell.count == 0:
            return prior
        return (prior * self.prior_weight + cell.total) / (self.prior_weight + cell.count)

    async def save(self, state: RoutingState, path: str | Path) -> None:
        """Write the observed cells of ``state`` to ``path``."""
        table = await state.quality_table()
        cells = {
            task: {
                model: {"mean": cell.total / cell.count, "count": cell.count}
                for model, cell in sorted(models.items())
                if cell.count
            }
            for task, models in sorted(table.items())
        }
        document = {
            "format": _FORMAT,
            "version": 1,
            "prior_weight": self.prior_weight,
            "cells": cells,
        }
        text = json.dumps(document, indent=2) + "\n"
        await asyncio.to_thread(Path(path).write_text, text, encoding="utf-8")

    @classmethod
    async def load(cls, path: str | Path, state: RoutingState) -> RoutingMatrix:
        """Add the observations in ``path`` to ``state``; return the file's configuration.

        Raises:
            MatrixError: The file is not a routing matrix, naming the file and the problem.
        """
        try:
            document = json.loads(await asyncio.to_thread(Path(path).read_text, encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
            raise MatrixError(f"{path}: cannot read routing matrix: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise MatrixError(f"{path}: not a routing matrix (format must be {_FORMAT!r})")
        cells = document.get("cells", {})
        if not isinstance(cells, dict):
            raise MatrixError(f"{path}: 'cells' must be a mapping of task -> model -> cell")
        for task, models in cells.items():
            if not isinstance(models, dict):
                raise MatrixError(f"{path}: cells.{task} must be a mapping of model -> cell")
            for model, cell in models.items():
                try:
                    mean, count = float(cell["mean"]), int(cell["count"])
                except (KeyError, TypeError, ValueError):
                    raise MatrixError(
                        f"{path}: cells.{task}.{model} needs numeric 'mean' and 'count'"
                    ) from None
                if not 0 <= mean <= 1 or count < 0:
                    raise MatrixError(f"{path}: cells.{task}.{model}: mean in [0,1], count >= 0")
                await state.add_quality(task, model, mean * count, count)
        return cls(prior_weight=float(document.get("prior_weight", _PRIOR_WEIGHT)))
