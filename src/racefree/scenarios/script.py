"""The command-line conventions every lesson script shares.

``--agents N`` (default 3: Researcher, Analyzer, Writer), ``--seed S``,
``--time-scale F`` (multiplies every simulated latency; 1.0 means 1 to 3 s per
model call) and ``--json`` (one JSON object instead of prose).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
    extra: dict[str, int]
    history: str | None = None
    extra_text: dict[str, str | None] = field(default_factory=dict)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(
            f"must be a number above 0 and at most {MAX_TIME_SCALE:g}, not {text}"
        )
    return value


MAX_TIME_SCALE = 100.0
"""At 100 a model call takes up to 300 s: slower than that teaches nothing more."""


def _writable_file(text: str) -> str:
    target = Path(text)
    folder = target.parent
    if target.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write {text}: give a file in an existing folder you can write to"
        )
    return text


def parse_lesson_args(
    description: str | None,
    argv: Sequence[str] | None = None,
    *,
    min_agents: int = 1,
    max_agents: int = 200,
    default_time_scale: float = 1.0,
    extra: dict[str, tuple[int, str]] | None = None,
    history: bool = False,
    extra_text: dict[str, tuple[str, str]] | None = None,
) -> LessonArgs:
    """Parse the shared options; bad values exit with status 2 and a one-line reason.

    ``extra`` adds a script's own whole-number options: ``{"limit": (2, "help")}``
    gives ``--limit N`` (at least 1), found in ``LessonArgs.extra["limit"]``.
    ``history`` adds ``--history FILE`` for scripts that save their run's history.
    ``extra_text`` adds a script's own text options: ``{"store": ("URL", "help")}``
    gives ``--store URL`` (default None), found in ``LessonArgs.extra_text["store"]``.
    """
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
    if history:
        parser.add_argument(
            "--history",
            metavar="FILE",
            type=_writable_file,
            default=None,
            help="also save the run's history as JSON lines, for `racefree check FILE`",
        )
    for name, (default, text) in (extra or {}).items():
        parser.add_argument(
            f"--{name}", type=int, default=default, metavar="N", help=f"{text} (default {default})"
        )
    for name, (metavar, text) in (extra_text or {}).items():
        parser.add_argument(f"--{name}", default=None, metavar=metavar, help=text)
    args = parser.parse_args(argv)
    for name in extra or {}:
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    if not min_agents <= args.agents <= max_agents:
        parser.error(
            f"--agents must be between {min_agents} and {max_agents}, not {args.agents}"
            + (" (a race needs at least two agents)" if args.agents < min_agents == 2 else "")
        )
    chosen = {name: getattr(args, name) for name in extra or {}}
    return LessonArgs(
        agent_names(args.agents),
        args.seed,
        args.time_scale,
        args.json,
        chosen,
        getattr(args, "history", None),
        {name: getattr(args, name) for name in extra_text or {}},
    )


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
