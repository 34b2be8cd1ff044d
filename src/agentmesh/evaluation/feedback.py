"""Training rows from a deployment's own traffic: JSONL traces plus judge verdicts.

Input (both written by ``agentmesh run``):

- the trace file of ``--trace FILE``, recorded with message content on
  (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``): each ``chat``
  span carries ``agentmesh.route.decision_id`` and the prompt
  (``gen_ai.input.messages``);
- the run records of ``agentmesh run --json`` (one JSON document per file, or
  one per line): judge steps carry ``verdict: {passed, score, round,
  judged_model}``. Spans do not carry verdicts, so the trace alone is not enough.

Each judged answer is joined to its prompt through the step's
``route.decision_id``. Answers are grouped per run, judged node and branch;
in each group the first round is the cheap attempt:

- ``weak_ok`` = the first round's verdict;
- ``strong_ok`` = the verdict of the last round, when the step was escalated
  to another model (unknown when the first answer passed: no one asked the
  stronger model).

The trainer predicts "the first answer is rejected" from these rows (the gain
target needs both outcomes, which traffic seldom has).

:func:`verdict_rows` needs the trace file alone: each judge node's span has
one ``gen_ai.evaluation.result`` event per verdict (judged node, branch, round,
model and routing decision under ``agentmesh.evaluation.*``, the pass/fail label
and the score), and the
rows are **graded**: the quality of an answer is its verdict's score (1 or 0
for a verdict without one), grouped as above per trace, judged node and branch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentmesh.evaluation.data import DataError, Row
from agentmesh.tracing.attributes import (
    EVALUATION_BRANCH,
    EVALUATION_DECISION_ID,
    EVALUATION_NODE,
    EVALUATION_ROUND,
    EVENT_EVALUATION_RESULT,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_INPUT_MESSAGES,
    ROUTE_DECISION_ID,
)
from agentmesh.tracing.reader import SpanRecord, TraceFileError, load_spans

__all__ = ["feedback_rows", "load_runs", "prompts_by_decision", "verdict_rows"]


def _message_text(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        messages = json.loads(raw)
    except ValueError:
        return None
    parts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") == "assistant":
            continue
        for part in message.get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                parts.append(part["content"])
    return "\n\n".join(parts) or None


def prompts_by_decision(spans: Iterable[SpanRecord]) -> dict[str, str]:
    """Routing decision id -> the prompt of its first chat attempt (content capture needed)."""
    found: dict[str, str] = {}
    for span in spans:
        decision = span.attributes.get(ROUTE_DECISION_ID)
        if not isinstance(decision, str) or decision in found:
            continue
        text = _message_text(span.attributes.get(GEN_AI_INPUT_MESSAGES))
        if text is not None:
            found[decision] = text
    return found


def load_runs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Run records from a file of ``agentmesh run --json`` output (one document, or JSON lines).

    Raises:
        DataError: Unreadable file or no run record in it.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot read: {exc}") from None
    try:
        docs: list[Any] = [json.loads(text)]
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        try:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (ValueError, RecursionError) as exc:
            raise DataError(f"{name}: not run JSON (agentmesh run --json): {exc}") from None
    runs = [d for d in docs if isinstance(d, dict) and isinstance(d.get("steps"), list)]
    if not runs:
        raise DataError(f"{name}: no run record with 'steps' (agentmesh run --json)")
    return runs


def _judged_step(steps: Sequence[Mapping[str, Any]], at: int) -> Mapping[str, Any] | None:
    verdict: Mapping[str, Any] = steps[at]["verdict"]
    for step in reversed(steps[:at]):
        if (
            step.get("kind") != "judge"
            and step.get("branch") == steps[at].get("branch")
            and step.get("round") == verdict.get("round")
            and step.get("model") == verdict.get("judged_model")
        ):
            return dict(step)
    return None


def feedback_rows(
    traces: Sequence[str | os.PathLike[str]], runs: Sequence[str | os.PathLike[str]]
) -> list[Row]:
    """Training rows from trace files and run records (see the module docstring).

    Raises:
        DataError: A file cannot be read, or no judged answer could be joined to a prompt.
    """
    prompts: dict[str, str] = {}
    for trace in traces:
        try:
            prompts.update(prompts_by_decision(load_spans(trace)))
        except TraceFileError as exc:
            raise DataError(str(exc)) from None
    groups: dict[tuple[str, str, str], list[tuple[int, bool, str | None]]] = {}
    judged = 0
    for path in runs:
        for run in load_runs(path):
            steps = run["steps"]
            run_id = str(run.get("run_id", ""))
            for at, step in enumerate(steps):
                verdict = step.get("verdict")
                if step.get("kind") != "judge" or not isinstance(verdict, dict):
                    continue
                judged += 1
                answer = _judged_step(steps, at)
                if answer is None:
                    continue
                decision = str((answer.get("route") or {}).get("decision_id"))
                key = (run_id, str(answer.get("node")), str(step.get("branch", "")))
                groups.setdefault(key, []).append(
                    (
                        int(verdict.get("round", 1)),
                        bool(verdict.get("passed")),
                        prompts.get(decision),
                    )
                )
    rows: list[Row] = []
    for rounds in groups.values():
        rounds.sort(key=lambda r: r[0])
        _, first_passed, prompt = rounds[0]
        if prompt is None:
            continue
        strong_ok = None if first_passed or len(rounds) == 1 else rounds[-1][1]
        rows.append(Row(prompt=prompt, weak_ok=first_passed, strong_ok=strong_ok))
    if not rows:
        raise DataError(
            f"no judged answer could be joined to its prompt ({judged} verdicts, "
            f"{len(prompts)} prompts in the traces): record traces with "
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true"
        )
    return rows


def _quality(attributes: Mapping[str, Any]) -> float:
    score = attributes.get(GEN_AI_EVALUATION_SCORE_VALUE)
    if isinstance(score, int | float) and 0 <= score <= 1:
        return float(score)
    return 1.0 if attributes.get(GEN_AI_EVALUATION_SCORE_LABEL) == "pass" else 0.0


def verdict_rows(traces: Sequence[str | os.PathLike[str]]) -> list[Row]:
    """Graded training rows from the judge verdict events of trace files (see the docstring).

    Raises:
        DataError: A file cannot be read, or no verdict could be joined to a prompt
            (no verdict event, or traces recorded without message content).
    """
    prompts: dict[str, str] = {}
    groups: dict[tuple[str, str, str], list[tuple[int, bool, float, str]]] = {}
    verdicts = 0
    for trace in traces:
        try:
            spans = load_spans(trace)
        except TraceFileError as exc:
            raise DataError(str(exc)) from None
        prompts.update(prompts_by_decision(spans))
        for span in spans:
            for event in span.events:
                if event.name != EVENT_EVALUATION_RESULT:
                    continue
                verdicts += 1
                a = event.attributes
                key = (
                    span.trace_id,
                    str(a.get(EVALUATION_NODE, "")),
                    str(a.get(EVALUATION_BRANCH, "")),
                )
                round_ = a.get(EVALUATION_ROUND)
                groups.setdefault(key, []).append(
                    (
                        int(round_) if isinstance(round_, int) else 1,
                        a.get(GEN_AI_EVALUATION_SCORE_LABEL) == "pass",
                        _quality(a),
                        str(a.get(EVALUATION_DECISION_ID, "")),
                    )
                )
    rows: list[Row] = []
    for rounds in groups.values():
        rounds.sort(key=lambda r: r[0])
        _, first_passed, first_quality, decision = rounds[0]
        prompt = prompts.get(decision)
        if prompt is None:
            continue
        escalated = not first_passed and len(rounds) > 1
        last_passed, last_quality = rounds[-1][1], rounds[-1][2]
        rows.append(
            Row(
                prompt=prompt,
                weak_ok=first_passed,
                strong_ok=last_passed if escalated else None,
                weak_quality=first_quality,
                strong_quality=last_quality if escalated else None,
            )
        )
    if not rows:
        raise DataError(
            f"no judge verdict could be joined to its prompt ({verdicts} verdict events, "
            f"{len(prompts)} prompts in the traces): record traces with "
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true"
        )
    return rows
