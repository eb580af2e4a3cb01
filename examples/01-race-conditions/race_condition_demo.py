"""race_condition_demo.py: four races forced to happen on every run, step by step.

Real threads, real shared dicts and lists. Each agent wraps its steps in
`with step("read"):` / `with step("write"):`, and a Choreography (a
threading.Condition) lets every agent take its first step before any takes
its second: the bad interleaving that natural timing shows once in a while,
every time.
(a) a counter read before a model call and written after it;
(b) a history copied, extended and assigned back;
(c) check-then-act: every agent sees the task free and claims it;
(d) turns whose two appends interleave although each append is atomic.
Then 8 threads call list.append 100,000 times each, unforced: nothing is lost.
"""

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import forced_script


def counter(name, state, llm, step):
    """(a) completed = completed + 1, with a model call between the read and the write."""
    with step("read"):
        completed = state["completed"]
    llm.call(name)
    with step("write"):
        state["completed"] = completed + 1


def history_copy(name, state, llm, step):
    """(b) Copy the history, call the model, assign the copy plus our entry back."""
    with step("read"):
        history = list(state["conversation_history"])
    reply = llm.call(name)
    with step("write"):
        state["conversation_history"] = [*history, {"agent": name, "content": reply.text}]


def check_then_act(name, state, llm, step):
    """(c) If the task has no owner, claim it and run it."""
    with step("read"):
        owner = state["owner"]
    if owner is None:
        with step("write"):
            state["owner"] = name
            state["runs"].append(name)
        llm.call(name)  # runs the task


def interleaved_turns(name, state, llm, step):
    """(d) Append a user message, call the model, append the reply: two atomic appends."""
    with step("read"):
        state["conversation"].append({"agent": name, "role": "user", "content": "task"})
    reply = llm.call(name)
    with step("write"):
        state["conversation"].append({"agent": name, "role": "assistant", "content": reply.text})


def appends(items, count):
    """(e) Unforced: many threads at once call list.append on one list."""
    append = items.append
    for item in range(count):
        append(item)


CASES = [
    ("forced_counter", counter, {"completed": 0}),
    ("forced_history_copy", history_copy, {"conversation_history": []}),
    ("forced_check_then_act", check_then_act, {"owner": None, "runs": []}),
    ("forced_interleaved_turns", interleaved_turns, {"conversation": []}),
]

if __name__ == "__main__":
    forced_script(__doc__, CASES, appends)
