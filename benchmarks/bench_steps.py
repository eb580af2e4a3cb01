"""What one explorer step costs, against a bare OS-thread handoff measured in the same run.

    .venv/bin/python benchmarks/bench_steps.py [--repeat 5]

Prints three tables (figures in docs/benchmarks.md; nothing here is a test):

1. **Handoff**: two OS threads passing a baton through two locks, on one CPU
   (both pinned to it, as the explorer pins its threads) and free on every
   CPU, and a baton passed to a random one of 8 or 24 threads on one CPU (as
   random walk among that many agents switches): microseconds per handoff.
   This is the floor of a switch between agents.
2. **Steps**: N agents (threads) each doing K read-modify-writes of one
   tracked key, explored by random walk. A step's cost is the run's time
   less the time the same agents take run one after another in one thread
   without the explorer (their own work, tracking included), divided by the
   steps the run took. Given for 2, 8 and 24 agents, with the explorer's
   threads on one CPU and, for comparison, free.
3. **Schedules per second** on the lesson-01 workflows (3 and 24 agents,
   random walk), and the most the workflow itself allows: one over the time
   its agents take run one after another in one thread, tracked, no explorer.

Best of ``--repeat`` runs for every cell; wall time, on a machine that may be
shared (the load average is printed).
"""

from __future__ import annotations

import _thread
import argparse
import functools
import importlib
import os
import platform
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from racefree.explore import explore
from racefree.history import History
from racefree.scenarios import lesson01
from racefree.scenarios.course import load, play_script
from racefree.scenarios.llm import SimulatedLLM, agent_names
from racefree.track import track

scheduler = importlib.import_module("racefree.explore._scheduler")


def best(repeat: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeat))


# --- 1. handoff --------------------------------------------------------------------------


def handoff_us(n: int = 20_000) -> float:
    ping, pong = _thread.allocate_lock(), _thread.allocate_lock()
    ping.acquire()
    pong.acquire()
    done = _thread.allocate_lock()
    done.acquire()

    def other() -> None:
        for _ in range(n):
            ping.acquire()
            pong.release()
        done.release()

    _thread.start_new_thread(other, ())
    start = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - start
    done.acquire()
    return elapsed / (2 * n) * 1e6


def handoff_on_one_cpu_us() -> float:
    with scheduler.on_one_cpu():  # the thread it starts inherits the mask
        return handoff_us()


def handoff_among_us(threads: int, hops: int = 20_000) -> float:
    """A baton passed to a random other one of ``threads`` threads pinned to one CPU, as
    random walk among that many agents does (seeded): microseconds per hop."""
    rng = random.Random(1)
    order, at = [], 0
    for _ in range(hops):
        nxt = rng.randrange(threads - 1)
        at = nxt + (nxt >= at)  # any thread but the one holding the baton
        order.append(at)
    order.append(0)  # the last hop comes home
    locks = [_thread.allocate_lock() for _ in range(threads)]
    for lock in locks:
        lock.acquire()
    position, stop = [1], [False]

    def hop(me: int) -> bool:
        locks[me].acquire()
        if stop[0] or position[0] > hops:
            return False
        position[0] += 1
        locks[order[position[0] - 1]].release()
        return True

    def other(me: int) -> None:
        while hop(me):
            pass

    with scheduler.on_one_cpu():
        for me in range(1, threads):
            _thread.start_new_thread(other, (me,))
        start = time.perf_counter()
        locks[order[0]].release()
        while hop(0):
            pass
        elapsed = time.perf_counter() - start
        stop[0] = True
        for lock in locks[1:]:
            lock.release()
    return elapsed / hops * 1e6


# --- 2. steps ----------------------------------------------------------------------------


def increments(agents: int, each: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(explored workflow, the same agents one after another in this thread)."""

    def work(session: Any) -> None:
        for _ in range(each):
            session["n"] = session["n"] + 1

    def workflow() -> int:
        session = track({"n": 0}, history=History())
        threads = [threading.Thread(target=work, args=(session,)) for _ in range(agents)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return int(session["n"])

    def alone() -> None:
        session = track({"n": 0}, history=History())
        for _ in range(agents):
            work(session)

    return workflow, alone


def per_run_alone_us(alone: Callable[[], Any], n: int) -> float:
    alone()
    start = time.perf_counter()
    for _ in range(n):
        alone()
    return (time.perf_counter() - start) / n * 1e6


def explored(
    workflow: Callable[[], Any], schedules: int, check: bool = False
) -> tuple[float, float]:
    """(microseconds per run, steps per run) for random walk."""
    steps = [0]
    run_once = importlib.import_module("racefree.explore.runner")._run_once

    def counting(*args: Any, **kwargs: Any) -> Any:
        run = run_once(*args, **kwargs)
        steps[0] += len(run.trace)
        return run

    runner = importlib.import_module("racefree.explore.runner")
    runner._run_once = counting
    try:
        result = explore(
            workflow,
            schedules=schedules,
            strategy="random",
            check=check,
            keep_going=True,
            shrink=False,
            save_dir=None,
        )
    finally:
        runner._run_once = run_once
    return result.wall_seconds / result.runs * 1e6, steps[0] / result.runs


# --- 3. lessons --------------------------------------------------------------------------


def lesson(names: list[str], script: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    module = load(lesson01.LESSON, script)

    def workflow() -> Any:
        return play_script(lesson01.LESSON, script, names, seed=1)

    def alone() -> None:
        history = History()
        llm = SimulatedLLM(1, 1.0, history=history)
        session = track(module.new_session(), history=history)
        sleep = time.sleep
        time.sleep = lambda seconds: None  # the model's latency is virtual when explored
        try:
            if script == "simple_fix":
                lock, done = threading.Lock(), queue.SimpleQueue()
                for name in names:
                    module.agent(name, session, lock, llm, done)
            else:
                for name in names:
                    module.agent(name, session, llm)
        finally:
            time.sleep = sleep

    return workflow, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = args.repeat
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_average}, best of {repeat}\n"
    )

    one_cpu = best(repeat, handoff_on_one_cpu_us)
    free = best(repeat, handoff_us)
    print("| bare OS-thread handoff | µs |")
    print("| --- | ---: |")
    print(f"| both threads on one CPU | {one_cpu:.1f} |")
    print(f"| threads free on every CPU | {free:.1f} |")
    for threads in (8, 24):
        among = best(repeat, functools.partial(handoff_among_us, threads))
        print(f"| to a random one of {threads} threads, on one CPU | {among:.1f} |")
    print()

    print(
        "| agents x read-modify-writes | threads | explored µs/run | alone µs/run | steps/run "
        "| µs/step | / one-CPU handoff | / free handoff |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for agents, each, schedules in ((2, 20, 400), (8, 10, 200), (24, 5, 100)):
        workflow, alone = increments(agents, each)
        alone_us = best(repeat, functools.partial(per_run_alone_us, alone, 200))
        for pinned in (True, False):
            scheduler.PIN_CPU = pinned
            explore(workflow, schedules=20, save_dir=None, shrink=False, keep_going=True)
            run_us, steps = min(
                (explored(workflow, schedules) for _ in range(repeat)), key=lambda x: x[0]
            )
            step = (run_us - alone_us) / steps
            print(
                f"| {agents} x {each} | {'one CPU' if pinned else 'free'} | {run_us:,.0f} "
                f"| {alone_us:,.0f} | {steps:.0f} | {step:.1f} | {step / one_cpu:.1f}x "
                f"| {step / free:.1f}x |"
            )
    scheduler.PIN_CPU = True
    print()

    # Where a step's time goes, with one agent (no handoff ever): explored as is, with
    # the decision at each access skipped (the access still joins the step), and alone.
    workflow, alone = increments(1, 50)
    alone_us = best(repeat, functools.partial(per_run_alone_us, alone, 200))
    full = min(explored(workflow, 300)[0] for _ in range(repeat))
    point, enter = scheduler.Scheduler.point, scheduler.Scheduler.enter

    def no_decision(self: Any, kind: str, key: str | None) -> None:
        if key is not None and self.by_ident.get(_thread.get_ident()) is not None:
            self.touch(key, True)

    def enter_without_decision(self: Any, guard: Any) -> bool:
        # A tracked access: its lock taken, as hooks.enter does, with no decision first.
        me = self.by_ident.get(_thread.get_ident())
        if me is None:
            return False
        guard.lock.acquire()
        guard.holder = me
        return True

    scheduler.Scheduler.point = no_decision
    scheduler.Scheduler.enter = enter_without_decision
    try:
        skipped = min(explored(workflow, 300)[0] for _ in range(repeat))
    finally:
        scheduler.Scheduler.point, scheduler.Scheduler.enter = point, enter
    print("| one agent, 50 read-modify-writes (100 accesses) | µs per access |")
    print("| --- | ---: |")
    print(f"| explored | {full / 100:.1f} |")
    print(f"| explored, no decision at an access | {skipped / 100:.1f} |")
    print(f"| alone, tracked, no explorer | {alone_us / 100:.1f} |\n")

    print(
        "| lesson 01 workflow | checker | schedules/s | µs/run | workflow alone µs/run "
        "| at most (1 / alone) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for agents, script, check, schedules in (
        (3, "broken_parallel", False, 2000),
        (3, "simple_fix", True, 2000),
        (24, "broken_parallel", False, 200),
        (24, "simple_fix", True, 200),
    ):
        workflow, alone = lesson(agent_names(agents), script)
        alone_us = best(repeat, functools.partial(per_run_alone_us, alone, 100))
        explore(workflow, schedules=20, save_dir=None, shrink=False, keep_going=True)
        run_us = min(explored(workflow, schedules, check)[0] for _ in range(repeat))
        print(
            f"| {script}.py, {agents} agents | {'on' if check else 'off'} | {1e6 / run_us:,.0f} "
            f"| {run_us:,.0f} | {alone_us:,.0f} | {1e6 / alone_us:,.0f} |"
        )


if __name__ == "__main__":
    main()
