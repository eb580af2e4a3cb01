"""workers.py: agents as separate worker processes sharing one store: lost updates, then the fix.

Every agent is its own OS process (on paper, its own host). The broken agents
read the session with get(), call the model, and write their copy back with
set(): a lock inside one process cannot help, each process has its own. The
fixed agents hand the store a delta with apply(): reducers merge it in one
atomic step, inside SQLite's write transaction or, on Redis, checked and
committed by one Lua script; an idempotency key makes a retried write count
once.

    python workers.py --agents 4 --store redis://127.0.0.1:6379/0
    python workers.py --agents 4 --store sqlite:///agents.db
"""

import multiprocessing
import sys

import _lesson

import racefree
from racefree.scenarios.processes import run_processes
from racefree.scenarios.script import parse_lesson_args, print_json

REDUCERS = {
    "conversation_history": "append",
    "total_tokens": "add",
    "completed": "add",
    "agent_results": "merge",
}


def broken_agent(name, url, prefix, seed, time_scale, start):
    """The bug across processes: get the session, call the model, set the copy back."""
    store = racefree.open_store(url)
    llm = racefree.SimulatedLLM(seed, time_scale)
    start.wait()  # every process is up: now they all work at once
    session = store.get(prefix + "session")  # 1. read: a copy, in this process
    reply = llm.call(name)  # 2. the model call: the other processes read now
    session["conversation_history"].append({"agent": name, "content": reply.text})
    session["total_tokens"] += reply.tokens
    session["completed"] += 1
    session["agent_results"][name] = reply.text
    store.set(prefix + "session", session)  # 3. LOST: replaces what the others set
    store.close()


def fixed_agent(name, url, prefix, seed, time_scale, start):
    """The fix: call the model, then let the store merge this agent's delta atomically."""
    reducers = {prefix + key: reducer for key, reducer in REDUCERS.items()}
    store = racefree.open_store(url, reducers=reducers, max_attempts=1_000)
    llm = racefree.SimulatedLLM(seed, time_scale)
    start.wait()
    reply = llm.call(name)
    store.apply(
        {
            prefix + "conversation_history": [{"agent": name, "content": reply.text}],
            prefix + "total_tokens": reply.tokens,
            prefix + "completed": 1,
            prefix + "agent_results": {name: reply.text},
        },
        idempotency_key=prefix + name,  # a retry of this write counts once
    )
    store.close()


def start_processes(agent, names, url, prefix, seed, time_scale):
    """One process per agent, each a fresh interpreter ("spawn"), as on another host.

    Returns the names of the processes that failed.
    """
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(names))
    processes = [
        context.Process(target=agent, args=(n, url, prefix, seed, time_scale, start), name=n)
        for n in names
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return [process.name for process in processes if process.exitcode != 0]


if __name__ == "__main__":
    args = parse_lesson_args(
        __doc__,
        min_agents=2,
        max_agents=16,
        default_time_scale=0.25,
        extra_text=_lesson.STORE_OPTION,
    )
    seed = 0 if args.seed is None else args.seed
    with (
        _lesson.script_errors(),
        _lesson.shared_store(args.extra_text["store"], quiet=args.json) as url,
    ):
        run = run_processes(
            args.names,
            url,
            seed=seed,
            time_scale=args.time_scale,
            script=sys.modules[__name__],  # this script's own agents
        )
    if args.json:
        print_json(run.to_json())
    else:
        for text, _ in run.lines(header="workers.py (lesson 05)"):
            print(text)
