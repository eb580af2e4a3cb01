"""``import racefree`` does not import asyncio; asyncio code still works when you use it.

Importing asyncio costs more than the rest of racefree (``python -X importtime``),
so racefree leaves it to the program that uses it, and the explorer imports it
when an exploration starts, before the workflow could make an event loop.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(SRC)!r})\n{code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_import_racefree_does_not_import_asyncio() -> None:
    code = (
        "import racefree\n"
        "from racefree import track, History\n"
        "session = track({'turns': []}, history=History())\n"
        "session['turns'].append('hi')\n"
        "print('asyncio' in sys.modules, racefree.current_agent())"
    )
    assert _run(code) == "False MainThread"


def test_an_asyncio_workflow_that_imports_asyncio_only_when_it_runs_is_still_explored() -> None:
    code = """
import racefree

def workflow():
    import asyncio  # first imported here, inside the run

    async def main():
        seen = []
        async def agent(name):
            await asyncio.sleep(1)
            seen.append(name)
        await asyncio.gather(agent("a"), agent("b"))
        return seen

    return asyncio.run(main())

def a_first(seen):
    return seen[0] == "a"

result = racefree.explore(workflow, invariants=[a_first], schedules=50, save_dir=None)
print(result.failure is not None)
"""
    # Only a loop the explorer controls tries "b" waking first: the invariant fails.
    assert _run(code) == "True"


def test_current_agent_names_the_task_once_asyncio_runs() -> None:
    code = """
import racefree
import asyncio

async def main():
    return racefree.current_agent()

loop = asyncio.new_event_loop()
print(loop.run_until_complete(loop.create_task(main(), name="Writer")))
loop.close()
"""
    assert _run(code) == "Writer"
