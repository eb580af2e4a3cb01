"""simple_fix.py: parallel and safe. A lock makes each read-modify-write one step.

The model call, the slow part, still runs in parallel with no lock held. Only
the update of the shared session (append to the history, add to the counters)
happens under a threading.Lock, so no agent can read between another's read
and write. The agents report progress through a queue.Queue that the main
thread prints: output from many threads is shared state too.
"""

import queue
import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import flow_script


def new_session():
    """The state every agent shares (the same as in broken_parallel.py)."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


def agent(name, session, lock, llm, done):
    """Call the model with no lock held, then update the session under the lock."""
    reply = llm.call(name)  # the slow part stays parallel

    with lock:  # read, modify and write as one step: no other agent gets in between
        session["conversation_history"].append({"agent": name, "content": reply.text})
        session["metadata"]["total_tokens"] += reply.tokens
        session["metadata"]["completed"] += 1
        session["agent_results"][name] = reply.text

    done.put((name, reply.tokens))  # tell the main thread; it does the printing


def run(names, session, llm, say=print):
    """One thread per agent, all at once, sharing one lock; print their news as it comes."""
    lock, done = threading.Lock(), queue.Queue()
    threads = [
        threading.Thread(target=agent, args=(name, session, lock, llm, done), name=name)
        for name in names
    ]
    for thread in threads:
        thread.start()
    for _ in names:
        name, tokens = done.get()  # waits for the next agent to finish
        say(f"{name} finished ({tokens} tokens)")
    for thread in threads:
        thread.join()


def closing(result):
    speedup = result.latency_sum / result.wall_seconds
    return [
        result.timing(),
        f"Their sum divided by the run's time: {speedup:.1f}"
        + (" (faster than one after another)." if speedup > 1 else "."),
    ]


if __name__ == "__main__":
    # The helper parses the options, hands `run` a session that records every read
    # and write (for the timeline and --history), and prints what happened.
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: f"{len(args.names)} agents in parallel threads, updates under a lock.",
        closing=closing,
        json_extra=lambda result: {"speedup": round(result.latency_sum / result.wall_seconds, 2)},
    )
