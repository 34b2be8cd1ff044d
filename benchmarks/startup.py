"""Start-up time of the ``agentmesh`` command, against bare Python on the same machine.

What is measured
    Wall time of a fresh process for each command, from ``subprocess.run`` to
    its exit, output discarded:

    * ``python``: ``python -c pass``, the floor every command pays;
    * ``--help`` and ``--version``: building the parser (every command
      module is imported) and printing;
    * ``models list``: the same, plus reading ``models/sim.yaml`` into the
      catalog and printing its table.

    Commands run as the ``agentmesh`` console script runs them
    (``from agentmesh.cli import main; sys.exit(main())``) with this checkout's
    ``src`` first on ``PYTHONPATH``. After one warm-up round (byte-code
    compiled, files cached), the commands run in interleaved rounds (python,
    --help, --version, models list, python, ...), so machine noise falls on
    all of them alike; each figure is the median over the rounds.

How to read the output (one JSON object on stdout)
    ``commands[name].median_s``: the median wall time; ``ratio_to_python``:
    that over ``python``'s median in the same run (the machine-independent
    figure); ``target_s`` and ``meets_target``: the targets of issue 24 on
    the 2-core development machine (``--help`` and ``--version`` at most
    0.3 s, ``models list`` at most 0.6 s). ``heaviest_imports``: the
    top-level modules that took longest to import in one ``-X importtime``
    run (cumulative ms), to say where the rest of the time goes.
    ``load_average`` before and after: a busy machine inflates every figure.

Run::

    .venv/bin/python benchmarks/startup.py               # 15 rounds, ~15 s
    .venv/bin/python benchmarks/startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = "import sys; from agentmesh.cli import main; sys.exit(main())"
SIM = str(ROOT / "models" / "sim.yaml")

# name -> (interpreter arguments, target seconds or None)
COMMANDS: dict[str, tuple[tuple[str, ...], float | None]] = {
    "python": (("-c", "pass"), None),
    "--help": (("-c", ENTRY, "--help"), 0.3),
    "--version": (("-c", ENTRY, "--version"), 0.3),
    "models list": (("-c", ENTRY, "models", "list", "--models", SIM), 0.6),
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("AGENTMESH_MODELS", None)
    return env


def _once(args: tuple[str, ...], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}")
    return elapsed


def _heaviest(args: tuple[str, ...], env: dict[str, str], top: int = 5) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    top_level: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name[1:2] == " " or not cumulative.strip().isdigit():
            continue  # nested imports count in their top-level parent
        top_level[name.strip()] = int(cumulative) / 1000
    ranked = sorted(top_level.items(), key=lambda kv: -kv[1])[:top]
    return {name: round(ms, 1) for name, ms in ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    args = parser.parse_args()
    env = _env()
    load_before = os.getloadavg()
    for command, _ in COMMANDS.values():
        _once(command, env)  # warm-up: byte-code and file cache
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, (command, _) in COMMANDS.items():
            times[name].append(_once(command, env))
    floor = statistics.median(times["python"])
    results = {}
    for name, (command, target) in COMMANDS.items():
        median = statistics.median(times[name])
        results[name] = {
            "median_s": round(median, 4),
            "min_s": round(min(times[name]), 4),
            "max_s": round(max(times[name]), 4),
            "ratio_to_python": round(median / floor, 1),
            "target_s": target,
            "meets_target": None if target is None else median <= target,
            "heaviest_imports": {} if name == "python" else _heaviest(command, env),
        }
    report = {
        "benchmark": "startup",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "commands": results,
        "meets_targets": all(r["meets_target"] is not False for r in results.values()),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
