"""The command-line conventions every lesson script shares.

``--agents N`` (default 3: Researcher, Analyzer, Writer), ``--seed S``,
``--time-scale F`` (multiplies every simulated latency; 1.0 means 1 to 3 s per
model call) and ``--json`` (one JSON object instead of prose).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from racefree.scenarios.llm import agent_names

__all__ = ["LessonArgs", "parse_lesson_args", "print_json"]


@dataclass(frozen=True)
class LessonArgs:
    """Parsed lesson-script arguments."""

    names: list[str]
    seed: int | None
    time_scale: float
    json: bool


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def parse_lesson_args(
    description: str | None,
    argv: Sequence[str] | None = None,
    *,
    min_agents: int = 1,
    max_agents: int = 200,
    default_time_scale: float = 1.0,
) -> LessonArgs:
    """Parse the shared options; bad values exit with status 2 and a one-line reason."""
    parser = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0] if description else None
    )
    parser.add_argument(
        "--agents",
        type=int,
        default=3,
        metavar="N",
        help=f"how many agents run (default 3; {min_agents} to {max_agents})",
    )
    parser.add_argument(
        "--seed", type=int, default=None, metavar="S", help="seed for latencies and replies"
    )
    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=default_time_scale,
        metavar="F",
        help=(
            "multiply every simulated latency by F; 1.0 means 1 to 3 s per model call "
            f"(default {default_time_scale})"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not min_agents <= args.agents <= max_agents:
        parser.error(
            f"--agents must be between {min_agents} and {max_agents}, not {args.agents}"
            + (" (a race needs at least two agents)" if min_agents == 2 else "")
        )
    return LessonArgs(agent_names(args.agents), args.seed, args.time_scale, args.json)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
