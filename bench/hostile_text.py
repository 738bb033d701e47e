"""CPU seconds of each text step on inputs built to be slow (prints figures; not a test).

For each shape of tests/support/hostile_text.py (200,000 characters by default):
the offline provider's two steps (summary, checklist) and the OpenAI gateway's
reply parser (`parse_checklist`, which runs over LLM output), each timed with
`time.process_time`, the best of --repeat runs. Prints a table and the worst case;
the target is ≤ 2 s of CPU per step.

    .venv/bin/python bench/hostile_text.py [--size 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.hostile_text import shapes  # noqa: E402

from adapters.llm import offline  # noqa: E402
from adapters.llm.openai_gateway import parse_checklist  # noqa: E402

TARGET_S = 2.0


def _cpu(work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    steps = ("summary", "checklist", "parse_reply")
    print(f"{'shape':<24}" + "".join(f"{s:>12}" for s in steps) + "   (CPU seconds)")
    worst = (0.0, "", "")
    for name, text in shapes(args.size).items():
        summary = offline.summarize_text(text)
        figures = {
            "summary": _cpu(lambda t=text: offline.summarize_text(t), args.repeat),
            "checklist": _cpu(lambda t=text, s=summary: offline.checklist_items(s, t), args.repeat),
            "parse_reply": _cpu(lambda t=text: parse_checklist(t), args.repeat),
        }
        print(f"{name:<24}" + "".join(f"{figures[s]:>12.3f}" for s in steps), flush=True)
        for step, seconds in figures.items():
            worst = max(worst, (seconds, name, step))
    seconds, name, step = worst
    verdict = "ok" if seconds <= TARGET_S else "OVER TARGET"
    print(f"worst: {seconds:.3f} s CPU ({step} on {name}); target ≤ {TARGET_S} s: {verdict}")


if __name__ == "__main__":
    main()
