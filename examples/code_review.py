"""Code review: review a diff; weak reviews are rejected by rules and escalated.

Built in Python with the ``Workflow`` builder (``graphs/code_review.yaml`` is
the same graph in YAML). The judge combines built-in rule validators (at
least 25 words, not a bare "LGTM", must name the risk) with a custom check
written in Python (the review must suggest a fix) and an LLM rubric. Each
rejection re-runs the review one tier up with the judge's feedback, so the
cheap model answers first and a stronger one only when needed.

    python examples/code_review.py [--models models/sim.yaml] [--input "$(git diff)"]
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from _common import options, report, run, traced
from agentmesh.graph import Workflow
from agentmesh.resilience import Verdict
from agentmesh.routing import Policy

DIFF = """--- a/app/users.py
+++ b/app/users.py
@@ -10,5 +10,6 @@
-def get_user(db, user_id: int) -> User:
-    return db.query("SELECT * FROM users WHERE id = %s", (user_id,))
+def get_user(db, user_id):
+    query = "SELECT * FROM users WHERE id = " + str(user_id)
+    return db.query(query)
"""


def suggests_a_fix(review: str) -> Verdict:
    """A custom rule: a review that finds problems must say how to fix them."""
    if re.search(r"(?i)\b(use|replace|restore|instead|should)\b", review):
        return Verdict(True, 1.0)
    return Verdict(False, 0.3, "say how to fix each problem")


def workflow() -> Workflow:
    """The review graph, in Python."""
    wf = Workflow("code_review", policy=Policy(strategy="cheapest"), budget_usd=0.10)
    wf.executor(
        "review",
        prompt="review_code",
        inputs={"diff": "$input", "language": "python"},
        task="code",
        max_output_tokens=500,
    )
    wf.judge(
        "gate",
        target="review",
        validators=(
            {"min_words": 25},
            {"not_regex": r"(?i)^\W*(\[[^\]]*\]\s*)?LGTM\W*$"},
            {"regex": "(?i)(injection|security|vulnerab|unsafe)"},
            "suggests_a_fix",
        ),
        rubric="Names each concrete problem with its severity and a fix.",
        max_rounds=3,
    )
    return wf.edge("review", "gate")


def main(argv: Sequence[str] | None = None) -> int:
    """Review the diff; print the accepted review and how it was reached."""
    args = options(__doc__.splitlines()[0], DIFF, argv)
    with traced(args):
        result = asyncio.run(
            run(workflow().spec(), args, validators={"suggests_a_fix": suggests_a_fix})
        )
    print(result.output or "")
    print()
    report(result)
    path = [s["model"] for s in result.steps if s["node"] == "review"]
    print("review attempts by tier: " + " -> ".join(m or "-" for m in path))
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
