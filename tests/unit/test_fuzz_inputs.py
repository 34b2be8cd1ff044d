"""Seeded fuzzing of every file a user hands the CLI: graphs, catalogs, policies, templates.

Each case mutates a shipped file (bytes deleted, duplicated or flipped; YAML
and Jinja tokens, hostile values, alias bombs and deep nesting inserted; values
swapped for other types) and runs the command that reads it, in process. Every
case must end with exit 0 (a harmless mutation), 1 (the command ran and
failed, e.g. no model fits a policy) or 2 with a message naming the file —
never a traceback (an exception out of ``main``), never a hang (an alarm
stops a case after ``HANG_S``). Seeds are fixed: a failure names its case,
and ``FUZZ_CASES``/``FUZZ_SEED`` in the environment run more or other cases.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from agentmesh.cli import main

ROOT = Path(__file__).resolve().parents[2]
CASES = int(os.environ.get("FUZZ_CASES", "100"))  # per kind
SEED = int(os.environ.get("FUZZ_SEED", "25"))
HANG_S = 20

BOMB = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)
    )
).encode()
YAML_TOKENS: tuple[bytes, ...] = (
    b"[",
    b"]",
    b"{",
    b"}",
    b": ",
    b"- ",
    b"&a ",
    b"*a",
    b"*i",
    b"!!python/object/apply:os.system ['id'] ",
    b"!!binary ",
    b"!!set ",
    b"\t",
    b"\xff\xfe",
    b"\x00",
    b"'",
    b'"',
    b"\n  ",
    b"\n- ",
    b"1e999",
    b"-1",
    b"99999999999999999999999999",
    b"null",
    b"~",
    b"[" * 300,
    b"{a: " * 80,
    b"<<: *a\n",
    b"? ",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"${UNSET_FUZZ_VAR}",
    BOMB,
)
JINJA_TOKENS: tuple[bytes, ...] = (
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b"{#",
    b"{{ undefined_fuzz }}",
    b"{{ ''.__class__ }}",
    b"{{ ''|center(1000000000) }}",
    b"{{ '{0:>1000000000}'.format(1) }}",
    b"{{ 'x' * 1000000000 }}",
    b"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    b"{{ lipsum(n=1000000) }}",
    b"{% include '/etc/passwd' %}",
    b"{% extends 'nope.j2' %}",
    b"{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    b"{% message system %}",
    b"{% endmessage %}",
    b"---\n",
)
VALUES: tuple[bytes, ...] = (
    b"[]",
    b"{}",
    b"12",
    b"-3",
    b"null",
    b"true",
    b"x" * 3000,
    b"[1, [2, [3]]]",
    b"{k: v}",
    b"0.5",
    b"*a",
    b"'\xc3\x28'",
)


def mutate(data: bytes, rng: random.Random, tokens: tuple[bytes, ...]) -> bytes:
    """One to four random edits of ``data``."""
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        op = rng.randrange(6)
        if op == 0 and data:  # delete a span
            data = data[:at] + data[at + rng.randint(1, 40) :]
        elif op == 1:  # duplicate a span
            data = data[:at] + data[at : at + rng.randint(1, 200)] + data[at:]
        elif op == 2:  # insert a token
            data = data[:at] + rng.choice(tokens) + data[at:]
        elif op == 3:  # swap the value after a ': ' for another type
            colon = data.find(b": ", at)
            if colon != -1:
                end = data.find(b"\n", colon)
                end = len(data) if end == -1 else end
                data = data[: colon + 2] + rng.choice(VALUES) + data[end:]
        elif op == 4 and data:  # cut the file short
            data = data[:at]
        elif data:  # flip a byte
            index = min(at, len(data) - 1)
            data = data[:index] + bytes([rng.randrange(256)]) + data[index + 1 :]
    return data


class Hung(Exception):
    """A case ran past ``HANG_S``."""


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Kind:
    """One kind of file: where its seeds come from, its tokens, and the command that reads it."""

    seeds: Callable[[], list[Path]]
    tokens: tuple[bytes, ...]
    argv: Callable[[Path, int], list[str]]
    name: str = "file.yaml"


SIM = str(ROOT / "models" / "sim.yaml")
POLICY_SEED = b"""strategy: cheapest
min_tier: 1
max_tier: 3
require: [json]
task: math
params: {quality_floor: 0.5}
resilience:
  retry: {max_attempts: 2, base_s: 0.1}
  breaker: {failure_threshold: 3, cooldown_s: 30}
"""


def graph_argv(path: Path, case: int) -> list[str]:
    checked = ["--models", SIM, "--prompts", str(ROOT / "prompts")] if case % 10 == 0 else []
    return ["validate", str(path), *checked]


KINDS: dict[str, Kind] = {
    "graph": Kind(
        seeds=lambda: sorted((ROOT / "graphs").glob("*.yaml")),
        tokens=YAML_TOKENS,
        argv=graph_argv,
    ),
    "catalog": Kind(
        seeds=lambda: [ROOT / "models" / "sim.yaml", ROOT / "models" / "cloud.yaml"],
        tokens=YAML_TOKENS,
        argv=lambda path, _: ["models", "list", "--models", str(path), "--json"],
    ),
    "policy": Kind(
        seeds=list,
        tokens=YAML_TOKENS,
        argv=lambda path, _: ["route", "--models", SIM, "--policy", str(path), "--prompt", "hi"],
    ),
    "template": Kind(
        seeds=lambda: [ROOT / "prompts" / "execute_step.j2"],
        tokens=YAML_TOKENS + JINJA_TOKENS,
        argv=lambda path, _: [
            "prompts",
            "render",
            "execute_step",
            "--dir",
            str(path.parent),
            "--models",
            SIM,
            "--model",
            "sim-4o",
            "--var",
            "question=q",
            "--var",
            "step=s",
        ],
        name="execute_step.j2",
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fuzzed_files_end_in_a_located_error_never_a_traceback_or_a_hang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    spec = KINDS[kind]
    seeds = [path.read_bytes() for path in spec.seeds()] or [POLICY_SEED]
    rng = random.Random(f"{SEED}-{kind}")
    outcomes: dict[int, int] = {}
    for case in range(CASES):
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        if kind == "template":
            shutil.copytree(ROOT / "prompts" / "_partials", folder / "_partials")
        path = folder / spec.name
        data = mutate(rng.choice(seeds), rng, spec.tokens)
        path.write_bytes(data)
        argv = spec.argv(path, case)
        where = f"{kind} case {case} (seed {SEED}): {argv}\n{data[:300]!r}"
        try:
            with alarm(HANG_S):
                code = main(argv)
        except Hung as exc:
            pytest.fail(f"hang: {where}: {exc}")
        except BaseException as exc:  # a traceback: what this test exists to catch
            pytest.fail(f"traceback: {where}: {type(exc).__name__}: {exc}")
        err = capsys.readouterr().err
        outcomes[code] = outcomes.get(code, 0) + 1
        assert code in (0, 1, 2), f"exit {code}: {where}\n{err}"
        assert "Traceback" not in err, where
        if code == 2:
            assert err.startswith("agentmesh: "), f"{where}\n{err}"
            assert str(folder) in err, f"the message names no file: {where}\n{err}"
        shutil.rmtree(folder)
    assert outcomes.get(2, 0) > CASES // 4, f"the mutations mostly broke the files: {outcomes}"
