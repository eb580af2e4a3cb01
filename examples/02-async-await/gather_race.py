"""gather_race.py: the same async agents under asyncio.gather. Fast, and the race is back.

asyncio runs one task at a time, and people conclude that it cannot race.
It can: a task is switched out at every `await`, and the agent awaits the
model between reading the session and writing it back. Every other agent
reads the same stale session meanwhile, exactly as threads did in lesson 01.

For contrast, the script then runs 1,000 tasks that each do
`completed = completed + 1` with no `await` in between: nothing is lost,
because no task can be switched out between that read and that write.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import ScenarioResult, lesson02
from racefree.scenarios.script import flow_script


def closing(result: ScenarioResult) -> list[str]:
    contrast = lesson02.no_await_between(1000)
    return [
        f"Total time {result.wall_seconds:.2f} s, about the slowest call "
        f"({result.latency_max:.2f} s): fast, and wrong.",
        "",
        "Contrast: " + contrast.story[0],
    ]


if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_gather_unsafe,
        min_agents=2,
        intro=lambda args: f"{len(args.names)} async agents under asyncio.gather.",
        closing=closing,
    )
