"""``agentmesh eval-router`` and ``agentmesh train-router``: measure and train routers.

- ``eval-router --test CSV --router SPEC [--train CSV] [--models FILE] [--plot PNG]
  [--scores-out CSV] [--json] [--bootstrap N]``: RouteLLM's metrics (curve, APGR,
  CPT(50%), CPT(80%), cost at each point) of each router, with random and oracle
  baselines; ``--bootstrap`` adds 95% intervals, and whether the first router's
  lead over each other one survives the luck of the test rows.
- ``train-router (--data CSV | --trace JSONL [--run JSON])... --out FILE``: a
  learned router for the ``learned`` strategy (``--cascade``: a cascade judge),
  optionally on a seeded split whose held-out part is written for evaluation;
  it records the training domain (the out-of-domain guard) unless ``--no-guard``.
  ``--data`` (alias ``--train``) reads correctness, graded or pairwise CSVs.

Exit codes: 0 success, 1 training failed, 2 bad input (files, columns, SPEC) or a
missing extra (numpy/matplotlib: ``pip install agentmesh[eval]``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import TYPE_CHECKING, Any

from agentmesh.cli import _names
from agentmesh.cli._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, emit_json, open_catalog

if TYPE_CHECKING:
    from agentmesh.evaluation.data import Dataset, Row
    from agentmesh.evaluation.report import Prices

__all__ = ["register"]

_BASELINES = ("random", "oracle")
_MIN_DRAWS = 100


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``eval-router`` and ``train-router``."""
    ev = sub.add_parser(
        "eval-router",
        help="measure routers on per-query correctness data (APGR, CPT, cost curve)",
    )
    ev.add_argument("--test", metavar="CSV", required=True, help="rows to evaluate on")
    ev.add_argument(
        "--train",
        metavar="CSV",
        action="append",
        default=[],
        help="rows routers may learn from (repeatable: the files are concatenated)",
    )
    ev.add_argument(
        "--router",
        metavar="SPEC",
        action="append",
        required=True,
        help=f"router to evaluate (repeatable): {', '.join(_names.ROUTERS)}, e.g. learned:FILE",
    )
    ev.add_argument("--scores-out", metavar="FILE", help="CSV prompt,score of the first --router")
    ev.add_argument("--plot", metavar="FILE.png", help="draw the cost-quality curves")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="N >= 100 draws of the test rows: 95%% intervals of each APGR and of the first "
        "router minus each other (paired); default 0 (none)",
    )
    ev.add_argument(
        "--bootstrap-seed", type=int, default=0, metavar="SEED", help="seed of the draws"
    )
    ev.add_argument(
        "--models",
        metavar="FILE",
        default=os.environ.get("AGENTMESH_MODELS"),
        help="catalog for prices (default: $AGENTMESH_MODELS; none: no costs)",
    )
    ev.add_argument("--strong-model", metavar="ID", help="catalog id priced as the strong model")
    ev.add_argument("--weak-model", metavar="ID", help="catalog id priced as the weak model")
    ev.add_argument(
        "--output-tokens",
        type=int,
        default=256,
        metavar="N",
        help="output tokens per answer when the data has no responses (default 256)",
    )
    _columns(ev)
    ev.set_defaults(handler=_eval)

    tr = sub.add_parser("train-router", help="train a learned router (or cascade judge)")
    tr.add_argument(
        "--data",
        "--train",
        dest="data",
        metavar="CSV",
        action="append",
        default=[],
        help="rows: correctness, graded or pairwise CSV (repeatable: concatenated)",
    )
    tr.add_argument(
        "--trace",
        metavar="JSONL",
        action="append",
        default=[],
        help="trace file recorded with content: its judge verdicts are graded rows "
        "(with --run: the run records' verdicts instead)",
    )
    tr.add_argument(
        "--run", metavar="JSON", action="append", default=[], help="agentmesh run --json output"
    )
    tr.add_argument("--out", metavar="FILE", required=True, help="model file to write")
    tr.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="keep this share of the --data rows out of training (default 0)",
    )
    tr.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    tr.add_argument(
        "--stratify",
        choices=("domain", "none"),
        default="domain",
        help="split within each domain when the data has one (default)",
    )
    tr.add_argument("--train-out", metavar="CSV", help="write the training rows here")
    tr.add_argument("--holdout-out", metavar="CSV", help="write the held-out rows here")
    tr.add_argument(
        "--strong-share",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="calibrate the threshold to send this share to the strong model (default 0.5)",
    )
    tr.add_argument("--max-ngrams", type=int, default=20000, metavar="N")
    tr.add_argument(
        "--strengths",
        metavar="L2,...",
        help="L2 strengths tried by cross-validation (default 1e-4,3e-4,1e-3,3e-3,1e-2; "
        "with --cascade 0.03,0.1,0.3,1,3,10)",
    )
    tr.add_argument(
        "--cascade", action="store_true", help="train a cascade judge on the weak responses"
    )
    tr.add_argument(
        "--prompt-router",
        metavar="FILE",
        help="with --cascade: a learned router trained on the same rows; its score of the "
        "question becomes a signal (cross-fitted for training; the judge file names FILE)",
    )
    tr.add_argument(
        "--response-words",
        type=int,
        default=0,
        metavar="N",
        help="with --cascade: weigh the N most frequent terms of the weak answers (default 0)",
    )
    tr.add_argument(
        "--fallback",
        choices=("strong", "prior"),
        default="strong",
        help="safe strategy for prompts outside the training domain: the strong model "
        "(default) or the training rows' prior win rate",
    )
    tr.add_argument(
        "--guard-quantile",
        type=float,
        default=0.99,
        metavar="Q",
        help="share of training prompts inside the domain limits (default 0.99)",
    )
    tr.add_argument("--no-guard", action="store_true", help="record no training domain (no guard)")
    tr.add_argument(
        "--add-guard",
        metavar="FILE",
        help="train nothing: write FILE's router with the training domain of these rows to --out",
    )
    tr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _columns(tr)
    tr.set_defaults(handler=_train)


def _columns(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strong-column",
        metavar="NAME",
        help="the strong model's column (pairwise files: its name); default: the better one",
    )
    parser.add_argument("--weak-column", metavar="NAME", help="default: the other model")
    parser.add_argument(
        "--scale",
        metavar="MIN-MAX",
        type=_scale,
        help="scale of graded (numeric) model columns, e.g. 1-10 "
        "(default: the first of 0-1, 1-10, 0-10, 0-100 that holds every value)",
    )


def _scale(text: str) -> tuple[float, float]:
    from agentmesh.evaluation.data import parse_scale

    try:
        return parse_scale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(s) for s in text.split(",") if s)


def _fail(message: object) -> int:
    print(f"agentmesh: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _load(path: str, args: argparse.Namespace) -> Dataset:
    from agentmesh.evaluation.data import load_csv

    return load_csv(path, strong=args.strong_column, weak=args.weak_column, scale=args.scale)


def _prices(args: argparse.Namespace) -> Prices | int | None:
    from agentmesh.evaluation.report import Prices
    from agentmesh.models import UnknownModel

    if not args.models:
        return None
    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    by_price = sorted(catalog.specs, key=lambda s: (s.pricing.input + s.pricing.output, s.id))
    try:
        strong = catalog[args.strong_model] if args.strong_model else by_price[-1]
        weak = catalog[args.weak_model] if args.weak_model else by_price[0]
    except UnknownModel as exc:
        return _fail(exc)
    return Prices(strong, weak, args.output_tokens)


def _eval(args: argparse.Namespace) -> int:
    from agentmesh.evaluation.data import DataError
    from agentmesh.evaluation.report import evaluate, render_table
    from agentmesh.evaluation.routers import RouterSpecError, Scorer, build_router

    if args.bootstrap < 0 or 0 < args.bootstrap < _MIN_DRAWS:
        return _fail(
            f"--bootstrap needs at least {_MIN_DRAWS} draws for a 95% interval "
            f"(or 0 for none), got {args.bootstrap}"
        )
    from agentmesh.evaluation.data import concat

    try:
        test = _load(args.test, args)
        train = concat([_load(p, args) for p in args.train]) if args.train else None
    except DataError as exc:
        return _fail(exc)
    prices = _prices(args)
    if isinstance(prices, int):
        return prices
    specs = list(dict.fromkeys(args.router))
    specs += [b for b in _BASELINES if not any(s.partition(":")[0] == b for s in specs)]
    routers: list[Scorer] = []
    try:
        for spec in specs:
            routers.append(build_router(spec, train.rows if train else ()))
        summary, results = evaluate(
            test, routers, prices, resamples=args.bootstrap, seed=args.bootstrap_seed
        )
    except (RouterSpecError, ValueError) as exc:
        return _fail(exc)
    except ImportError as exc:
        return _fail(f"{exc}: install the eval extra (pip install 'agentmesh[eval]')")
    if train is not None:
        summary["train"] = train.source
        summary["train_rows"] = len(train)
        summary["train_kind"] = train.kind
    if args.scores_out:
        scores = routers[0].score(test.rows)
        try:
            with open(args.scores_out, "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["prompt", "score"])
                writer.writerows(
                    (r.prompt, repr(s)) for r, s in zip(test.rows, scores, strict=True)
                )
        except OSError as exc:
            return _fail(f"{args.scores_out}: {exc}")
    if args.plot:
        try:
            from agentmesh.evaluation.plot import plot_curves

            plot_curves(summary, results, args.plot)
        except ImportError as exc:
            return _fail(f"{exc}: --plot needs the eval extra (pip install 'agentmesh[eval]')")
        except OSError as exc:
            return _fail(f"{args.plot}: {exc}")
    if args.json:
        emit_json({**summary, "routers": [r.to_dict() for r in results]})
    else:
        print(render_table(summary, results))
        if args.plot:
            print(f"# plot written to {args.plot}")
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from agentmesh.evaluation.data import DataError, split_rows, subset, write_csv
    from agentmesh.routing.strategies.adaptive import LearnedModel

    if not args.data and not args.trace:
        return _fail("train-router needs --data CSV or --trace files")
    if not 0 <= args.holdout < 1:
        return _fail(f"--holdout must be in [0, 1), got {args.holdout}")
    try:
        datasets = [_load(p, args) for p in args.data]
        from agentmesh.evaluation.feedback import feedback_rows, verdict_rows

        if args.run:
            traffic = feedback_rows(args.trace, args.run)
        else:
            traffic = verdict_rows(args.trace) if args.trace else []
    except DataError as exc:
        return _fail(exc)
    rows = []
    split_info: dict[str, Any] = {}
    for data in datasets:
        stratify = args.stratify == "domain" and any(r.domain for r in data.rows)
        if args.holdout:
            train_idx, test_idx = split_rows(
                data.rows, 1 - args.holdout, args.seed, (lambda r: r.domain) if stratify else None
            )
        else:
            train_idx, test_idx = list(range(len(data.rows))), []
        part = subset(data, train_idx)
        rows += list(part.rows)
        try:
            if args.train_out:
                write_csv(part, args.train_out)
            if args.holdout_out and test_idx:
                write_csv(subset(data, test_idx), args.holdout_out)
        except OSError as exc:
            return _fail(exc)
        split_info[os.path.basename(data.source)] = {
            "rows": len(data.rows),
            "train_rows": len(train_idx),
            "holdout": args.holdout,
            "seed": args.seed,
            "stratified_by": "domain" if stratify else None,
            "strong": data.strong,
            "weak": data.weak,
            "kind": data.kind,
            **data.extra,
        }
    rows += traffic
    meta: dict[str, Any] = {"data": split_info}
    if traffic:
        meta["feedback"] = {
            "runs": args.run,
            "traces": args.trace,
            "rows": len(traffic),
            "verdicts_from": "run records" if args.run else "trace verdict events (graded)",
        }
    say = None if args.quiet else (lambda m: print(f"# {m}", file=sys.stderr))
    try:
        from agentmesh.evaluation import trainer
    except ImportError as exc:
        return _fail(f"{exc}: train-router needs the eval extra (pip install 'agentmesh[eval]')")
    if not 0 < args.guard_quantile <= 1:
        return _fail(f"--guard-quantile must be in (0, 1], got {args.guard_quantile}")
    if args.add_guard:
        return _add_guard(args, rows)
    try:
        if args.cascade:
            from agentmesh.evaluation.cascade_fit import CascadeConfig, fit_cascade

            cascade_config = CascadeConfig(
                strong_share=args.strong_share, response_words=args.response_words
            )
            if args.strengths:
                cascade_config = replace(cascade_config, strengths=_floats(args.strengths))
            router = router_file = None
            if args.prompt_router:
                router = LearnedModel.load(args.prompt_router)
                out_dir = os.path.dirname(os.path.abspath(args.out))
                router_file = os.path.relpath(os.path.abspath(args.prompt_router), out_dir)
            model = fit_cascade(
                rows,
                cascade_config,
                meta=meta,
                prompt_router=router,
                prompt_router_file=router_file,
            )
            model.save(args.out)
            print(
                f"# cascade judge written to {args.out} ({len(rows)} rows): "
                f"cv {model.meta['cv_mean']:.3f} ± {model.meta['cv_sd']:.3f}, strength "
                f"{model.meta['strength']:g}, pairs {'on' if model.pairs else 'off'}"
            )
            return EXIT_OK
        config = trainer.TrainConfig(
            strong_share=args.strong_share,
            max_ngrams=args.max_ngrams,
            guard=not args.no_guard,
            guard_quantile=args.guard_quantile,
            fallback=args.fallback,
        )
        if args.strengths:
            config = replace(config, strengths=_floats(args.strengths))
        result = trainer.train_router(rows, config, meta=meta, progress=say)
    except ValueError as exc:
        print(f"agentmesh: training failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        result.model.save(args.out)
    except OSError as exc:
        return _fail(exc)
    best = max(result.cv, key=lambda c: c["mean"])
    print(
        f"# learned router written to {args.out}: {len(rows)} rows, target {result.target}, "
        f"cv {best['mean']:.3f} ± {best['sd']:.3f}, threshold {result.model.threshold:.4f} "
        f"for {args.strong_share:.0%} strong calls"
        + ("" if args.no_guard else f", guard on (fallback {args.fallback})")
    )
    return EXIT_OK


def _add_guard(args: argparse.Namespace, rows: list[Row]) -> int:
    """``--add-guard FILE``: FILE's router, unchanged but for its training domain, to --out."""
    from dataclasses import replace

    from agentmesh.evaluation.domain_fit import fit_domain
    from agentmesh.routing.strategies.adaptive import LearnedModel

    try:
        model = LearnedModel.load(args.add_guard)
        domain = fit_domain(
            rows,
            features=model.features,
            order=model.ngram_order,
            quantile=args.guard_quantile,
            fallback=args.fallback,
            seed=args.seed,
        )
    except ValueError as exc:
        return _fail(exc)
    try:
        replace(model, domain=domain).save(args.out)
    except OSError as exc:
        return _fail(exc)
    print(
        f"# {args.add_guard} with the training domain of {len(rows)} rows written to {args.out} "
        f"(limits: novelty {domain.novelty_limit:.3f}, feature distance "
        f"{domain.feature_limit:.2f}; fallback {domain.fallback})"
    )
    return EXIT_OK
