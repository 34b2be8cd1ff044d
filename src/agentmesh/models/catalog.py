"""Model catalogs: YAML files listing :class:`ModelSpec` entries.

A catalog is chosen at run time (``--models FILE``), so one workflow runs on the
embedded model, a simulated pool or cloud providers without change. Errors name
the file, the line, the entry and the field::

    models/sim.yaml:14: model 'small' (entry 2): pricing.input: must be >= 0 (got -1)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from agentmesh._validation import describe_errors
from agentmesh._yamlfile import YamlFileError, describe_yaml_error, parse_yaml, read_text
from agentmesh.models.spec import ModelSpec

__all__ = ["Catalog", "CatalogError", "UnknownModel", "load_catalog"]


class CatalogError(ValueError):
    """A catalog file is missing, unparseable or has an invalid entry."""


class UnknownModel(KeyError):
    """A model id that the catalog does not list.

    A ``KeyError``, so ``Mapping`` methods work: ``"x" in catalog`` is False,
    ``catalog.get("x")`` is None.
    """

    def __init__(self, model_id: str, known: Iterable[str]) -> None:
        self.model_id = model_id
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown model {model_id!r}; the catalog lists: {listed}")

    def __str__(self) -> str:
        return str(self.args[0])


class Catalog(Mapping[str, ModelSpec]):
    """An immutable, ordered set of models keyed by id."""

    def __init__(self, specs: Iterable[ModelSpec], *, source: str = "<python>") -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.id in self._specs:
                raise CatalogError(f"{source}: duplicate model id {spec.id!r}")
            self._specs[spec.id] = spec
        self.source = source

    def __getitem__(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            raise UnknownModel(model_id, self._specs) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Catalog({list(self._specs)!r}, source={self.source!r})"

    @property
    def specs(self) -> tuple[ModelSpec, ...]:
        """All specs, in file order."""
        return tuple(self._specs.values())

    @property
    def chat_specs(self) -> tuple[ModelSpec, ...]:
        """The chat models (every entry but ``kind: embeddings``), in file order: what routes."""
        return tuple(s for s in self._specs.values() if not s.embeds)

    @property
    def embedding_specs(self) -> tuple[ModelSpec, ...]:
        """The ``kind: embeddings`` entries, in file order."""
        return tuple(s for s in self._specs.values() if s.embeds)

    def by_tier(self) -> tuple[ModelSpec, ...]:
        """The chat models from the cheapest tier up (then by price)."""
        return tuple(sorted(self.chat_specs, key=lambda s: (s.tier, s.pricing.output)))


def _entry_lines(root: yaml.Node | None) -> list[int]:
    """1-based line of each entry under ``models:``, or [] if the shape is unexpected."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "models" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file.

    Raises:
        CatalogError: The file is missing, not UTF-8 YAML or past the
            :class:`~agentmesh.limits.FileLimits`, has no ``models`` list, or an
            entry is invalid; the message names file, line, entry and field.
    """
    path = Path(path)
    try:
        data, root = parse_yaml(read_text(path, "catalog"))
    except YamlFileError as exc:
        raise CatalogError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise CatalogError(describe_yaml_error(exc, path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(f"{path}: expected a top-level 'models:' list")
    unknown_keys = set(data) - {"models", "description"}
    if unknown_keys:
        raise CatalogError(f"{path}: unknown top-level keys: {', '.join(sorted(unknown_keys))}")
    lines = _entry_lines(root)
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data["models"]):
        line = f":{lines[index]}" if index < len(lines) else ""
        label = f"entry {index + 1}"
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            label = f"model {entry['id']!r} ({label})"
        if not isinstance(entry, dict):
            raise CatalogError(f"{path}{line}: {label}: expected a mapping of fields")
        try:
            spec = ModelSpec.model_validate(entry)
        except ValidationError as exc:
            problems = describe_errors(exc)
            raise CatalogError(f"{path}{line}: {label}: {problems}") from None
        if spec.id in seen:
            raise CatalogError(
                f"{path}{line}: {label}: duplicate id {spec.id!r} (first at entry {seen[spec.id]})"
            )
        seen[spec.id] = index + 1
        specs.append(spec)
    return Catalog(specs, source=str(path))
