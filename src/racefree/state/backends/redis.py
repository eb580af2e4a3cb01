"""The Redis backend (``redis://host:port/db``, ``rediss://`` for TLS): many machines.

Every op reaches Redis as one or two Lua scripts, and Redis runs each script
atomically, whichever machine sent it:

* ``read``: the state (version, last writer, value) of the op's keys, and the
  idempotency record if there is one, in one atomic step. Reads end here.
* the store decides in Python (the shared, I/O-free :mod:`~racefree.state._core`);
* ``commit``: if every key is still at the version read, write the effects,
  raise each written key's version by one, and store the op's record, all in
  one step; otherwise write nothing and tell the store to run the op again
  (:class:`~racefree.state.backends.base.RetryOperation`: optimistic
  concurrency, like ``WATCH``/``MULTI``/``EXEC`` but in one round trip).

``append``, ``extend`` and ``append_turn`` are carried out natively by one
script (``RPUSH`` on a Redis list, no read of the list), with the same result,
versions and stored value as the decision gives.

**Exactly once over a dropped connection.** Every write carries a record key:
the caller's ``idempotency_key``, or else a fresh private token that expires
after ten minutes. The script that writes also stores the op's result under
that key, in the same atomic step. When the connection drops before the
answer arrives, the backend reconnects and sends the same op with the same
key: if the first attempt was applied, Redis answers with its recorded result
instead of writing again; if not, the write happens now. redis-py's own
retries are switched off, so nothing is ever re-sent without such a key.

Layout, for a namespace ``NS`` (``?namespace=NS`` in the URL, default
``racefree``): ``{NS}:m:KEY`` a hash (``n`` version, ``w`` last writer, ``k``
kind: ``j`` JSON text in ``v``, or ``l`` a list whose items are the JSON
texts of the Redis list ``{NS}:l:KEY``); ``{NS}:keys`` the set of written
keys; ``{NS}:i:ID`` idempotency records; ``{NS}:t:TOKEN`` private tokens.
Values are JSON text, never pickle. Several stores can share one Redis
database under different namespaces.

``redis`` (redis-py) is imported when a Redis store is opened, so importing
racefree needs nothing outside the standard library.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import uuid
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from racefree.errors import BackendUnavailableError, StoreError, UsageError
from racefree.history import History
from racefree.state._core import (
    RUNS_USER_CODE,
    KeyState,
    Op,
    decide,
    decide_all,
    describe_events,
    replay,
)
from racefree.state.backends import redact
from racefree.state.backends._shared import (
    dumps,
    loads,
    loads_list,
    loads_record,
    record_text,
    reentrant_call_error,
)
from racefree.state.backends.base import AsyncBackend, Backend, RetryOperation

__all__ = ["AsyncRedisBackend", "RedisBackend", "open_async", "open_sync"]

GUARANTEE = (
    "Safe across the threads, asyncio tasks, processes and machines that use the same "
    "Redis server and namespace."
)

DEFAULT_NAMESPACE = "racefree"
TOKEN_SECONDS = 600  # how long a private retry token is kept
CONNECTION_ATTEMPTS = 3  # one op, sent again with the same record key after a dropped connection

_READ_ONLY = frozenset({"get", "snapshot", "versions"})
_APPENDS = frozenset({"append", "extend", "append_turn"})
_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

# KEYS: meta, list, key set, record key. ARGV: key, writer ('' = none, else
# '=' + name), the record's text up to the result, seconds to keep the record
# (0 = forever), then the items' JSON texts (RPUSH answers the new length,
# so the first index needs no LLEN). Answers {0, record} for a replay,
# {1, first index}, or {2, value, version, writer} for a value that is no list.
_APPEND = """
local meta, list = KEYS[1], KEYS[2]
local done = redis.call('GET', KEYS[4])
if done then return {0, done} end
local f = redis.call('HMGET', meta, 'k', 'w')
local kind, writer = f[1], f[2]
if kind and kind ~= 'l' then
  local text = redis.call('HGET', meta, 'v')
  if text ~= 'null' then return {2, text, redis.call('HGET', meta, 'n'), writer} end
end
local start = 0
if #ARGV == 4 then
  if kind == 'l' then start = redis.call('LLEN', list) end
else
  local length = 0
  for i = 5, #ARGV, 1000 do
    length = redis.call('RPUSH', list, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  start = length - (#ARGV - 4)
end
redis.call('HINCRBY', meta, 'n', 1)
if kind ~= 'l' then
  redis.call('HSET', meta, 'k', 'l')
  redis.call('HDEL', meta, 'v')
  redis.call('SADD', KEYS[3], ARGV[1])
end
if ARGV[2] == '' then
  if writer then redis.call('HDEL', meta, 'w') end
elseif writer ~= string.sub(ARGV[2], 2) then
  redis.call('HSET', meta, 'w', string.sub(ARGV[2], 2))
end
local record = ARGV[3] .. start .. ']'
if ARGV[4] == '0' then
  redis.call('SET', KEYS[4], record)
else
  redis.call('SET', KEYS[4], record, 'EX', ARGV[4])
end
return {1, start}
"""

# KEYS: meta1, list1, meta2, list2, ..., then the record key if ARGV[1] == '1'.
# Answers {record or false, {version, writer, kind, text, items}, ...}.
_READ = """
local out = {false}
local last = #KEYS
if ARGV[1] == '1' then
  out[1] = redis.call('GET', KEYS[last])
  last = last - 1
end
for i = 1, last, 2 do
  local f = redis.call('HMGET', KEYS[i], 'n', 'w', 'k', 'v')
  local items = {}
  if f[3] == 'l' then items = redis.call('LRANGE', KEYS[i + 1], 0, -1) end
  out[#out + 1] = {f[1] or '0', f[2] or false, f[3] or false, f[4] or false, items}
end
return out
"""

# KEYS: the key set. ARGV: the namespace's prefix, '1' for values too.
# Answers {{key, version, writer, kind, text, items}, ...}.
_READ_ALL = """
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local meta = ARGV[1] .. ':m:' .. name
  if ARGV[2] == '1' then
    local f = redis.call('HMGET', meta, 'n', 'w', 'k', 'v')
    local items = {}
    if f[3] == 'l' then items = redis.call('LRANGE', ARGV[1] .. ':l:' .. name, 0, -1) end
    out[#out + 1] = {name, f[1], f[2] or false, f[3] or false, f[4] or false, items}
  else
    out[#out + 1] = {name, redis.call('HGET', meta, 'n')}
  end
end
return out
"""

# KEYS: record key, key set, meta1, list1, meta2, list2, ...
# ARGV: writer ('' or '=' + name), record text ('' = none), seconds to keep it
# (0 = forever), then per key: key, version read, effect ('0' none, 'j' put
# JSON, 'l' put a list, 'e' extend the list), item count, items.
# Answers {0, record} for a replay, {1} when written, {2, key, expected, actual}
# when a key changed since it was read (nothing written).
_COMMIT = """
local done = redis.call('GET', KEYS[1])
if done then return {0, done} end
local specs = {}
local a = 4
for i = 3, #KEYS, 2 do
  local expected = tonumber(ARGV[a + 1])
  local actual = tonumber(redis.call('HGET', KEYS[i], 'n') or '0')
  if actual ~= expected then return {2, ARGV[a], expected, actual} end
  specs[#specs + 1] = {i, a}
  a = a + 4 + tonumber(ARGV[a + 3])
end
for _, s in ipairs(specs) do
  local meta, list, a = KEYS[s[1]], KEYS[s[1] + 1], s[2]
  local code, first, count = ARGV[a + 2], a + 4, tonumber(ARGV[a + 3])
  if code ~= '0' then
    if code == 'j' then
      redis.call('DEL', list)
      redis.call('HSET', meta, 'k', 'j', 'v', ARGV[first])
    else
      if code == 'l' then redis.call('DEL', list) end
      for i = first, first + count - 1, 1000 do
        redis.call('RPUSH', list, unpack(ARGV, i, math.min(i + 999, first + count - 1)))
      end
      redis.call('HSET', meta, 'k', 'l')
      redis.call('HDEL', meta, 'v')
    end
    redis.call('HINCRBY', meta, 'n', 1)
    if ARGV[1] == '' then
      redis.call('HDEL', meta, 'w')
    else
      redis.call('HSET', meta, 'w', string.sub(ARGV[1], 2))
    end
    redis.call('SADD', KEYS[2], ARGV[a])
  end
end
if ARGV[2] ~= '' then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  end
end
return {1}
"""

_SCRIPTS = {"append": _APPEND, "read": _READ, "read_all": _READ_ALL, "commit": _COMMIT}

# A step of an op: (script name, keys, args); the driver sends it and the reply comes back.
Call = tuple[str, list[str], list[Any]]


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _state(version: Any, writer: Any, kind: Any, text: Any, items: list[Any]) -> KeyState:
    if kind is None:
        return KeyState(None, 0, None)
    value = loads_list(items) if _text(kind) == "l" else loads(text)
    return KeyState(value, int(version), _text(writer) if writer is not None else None)


def parse_url(url: str) -> tuple[str, str]:
    """redis-py's URL (without racefree's ``namespace`` option) and the namespace."""
    shown = redact(url)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    namespace = DEFAULT_NAMESPACE
    rest = []
    for name, value in query:
        if name == "namespace":
            namespace = value
        else:
            rest.append((name, value))
    if not _NAMESPACE.fullmatch(namespace):
        raise UsageError(
            f"The namespace {namespace!r} in the store URL {shown!r} is not 1 to 64 letters, "
            "digits or _.:- characters. Choose a plain name such as namespace=agents."
        )
    if not parts.hostname and not parts.path.strip("/"):
        raise UsageError(
            f"The Redis store URL {shown!r} names no server. Write redis://host:port/db "
            "(rediss:// for TLS), for example redis://127.0.0.1:6379/0."
        )
    return urlunsplit(parts._replace(query=urlencode(rest))), namespace


def _password(url: str) -> str | None:
    password = urlsplit(url).password
    return unquote(password) if password else None


class _Plan:
    """The sans-I/O part of the Redis backend: builds script calls, decides, reads replies.

    ``steps(op, token)`` is a generator that yields the script calls an op
    needs and receives their replies; :class:`RedisBackend` drives it with the
    blocking client, :class:`AsyncRedisBackend` with the asyncio one.
    """

    def __init__(self, namespace: str, history: History | None) -> None:
        self.prefix = "{" + namespace + "}"
        self.key_set = self.prefix + ":keys"
        self.history = history
        self.local = threading.local()
        # Private tokens: unique per store object (a random prefix) and per op (a counter).
        self._token_prefix = uuid.uuid4().hex[:16] + "-"
        self._counter = itertools.count()

    def token(self) -> str:
        """A fresh private record key for one op (shared by its retries)."""
        return self._token_prefix + str(next(self._counter))

    def record_key(self, op: Op, token: str) -> tuple[str, int]:
        if op.idempotency_key is not None:
            return f"{self.prefix}:i:{op.idempotency_key}", 0
        return f"{self.prefix}:t:{token}", TOKEN_SECONDS

    def steps(self, op: Op, token: str) -> Generator[Call, Any, Any]:
        prefix = self.prefix
        name = op.name
        if op.keys is None:
            values = name == "snapshot"
            rows = yield ("read_all", [self.key_set], [prefix, "1" if values else "0"])
            states: dict[str, KeyState] = {}
            for row in sorted(rows, key=lambda r: r[0]):
                key = _text(row[0])
                states[key] = _state(*row[1:]) if values else KeyState(None, int(row[1] or 0), None)
            decision = decide_all(op, states)
            if self.history is not None:
                for event in describe_events(op, list(states), list(states.values()), decision):
                    self.history.record(**event)
            return decision.result
        keys = op.keys
        writer = "" if op.agent is None else "=" + op.agent
        if name in _APPENDS and self.history is None:
            record, seconds = self.record_key(op, token)
            key = keys[0]
            items = [dumps(item) for item in op.args[0]]
            head = dumps([name, [key]])[:-1] + ","
            reply = yield (
                "append",
                [f"{prefix}:m:{key}", f"{prefix}:l:{key}", self.key_set, record],
                [key, writer, head, seconds, *items],
            )
            status = reply[0]
            if status == 1:
                return reply[1]
            if status == 0:
                return replay(op, loads_record(reply[1]))
            _, text, version, last = reply
            decide(op, [KeyState(loads(text), int(version), None if last is None else _text(last))])
            raise AssertionError("unreachable: extending a non-list must raise")
        names: list[str] = []
        for key in keys:
            names += (f"{prefix}:m:{key}", f"{prefix}:l:{key}")
        writes = name not in _READ_ONLY
        record, seconds = self.record_key(op, token)
        reply = yield ("read", [*names, record] if writes else names, ["1" if writes else "0"])
        if reply[0] is not None:
            return replay(op, loads_record(reply[0]))
        states_list = [_state(*row) for row in reply[1:]]
        if name in RUNS_USER_CODE:
            self.local.in_user_code = True
            try:
                decision = decide(op, states_list)
            finally:
                self.local.in_user_code = False
        else:
            decision = decide(op, states_list)
        if not decision.effects and op.idempotency_key is None:
            if self.history is not None:
                for event in describe_events(op, keys, states_list, decision):
                    self.history.record(**event)
            return decision.result
        effects = {key: (kind, payload) for kind, key, payload in decision.effects}
        args: list[Any] = [writer, record_text(op, decision.result), seconds]
        for key, state in zip(keys, states_list, strict=True):
            effect = effects.get(key)
            if effect is None:
                args += (key, state.version, "0", 0)
            elif effect[0] == 1:  # EXTEND
                args += (key, state.version, "e", len(effect[1]), *map(dumps, effect[1]))
            elif type(effect[1]) is list:
                args += (key, state.version, "l", len(effect[1]), *map(dumps, effect[1]))
            else:
                args += (key, state.version, "j", 1, dumps(effect[1]))
        reply = yield ("commit", [record, self.key_set, *names], args)
        status = reply[0]
        if status == 0:
            return replay(op, loads_record(reply[1]))
        if status == 2:
            raise RetryOperation(_text(reply[1]), int(reply[2]), int(reply[3]))
        if self.history is not None:
            for event in describe_events(op, keys, states_list, decision):
                self.history.record(**event)
        return decision.result


class _RedisBase:
    """What both flavours share: the URL, the plan, and the translation of redis-py errors."""

    schemes: tuple[str, ...] = ("redis", "rediss")
    guarantee: str = GUARANTEE
    optimistic: bool = True

    def __init__(self, url: str, *, history: History | None) -> None:
        self._shown = redact(url)
        self._secret = _password(url)
        self._client_url, namespace = parse_url(url)
        self._plan = _Plan(namespace, history)
        # With a history, one op at a time per process, so that the order of
        # the events recorded here is the order in which Redis applied them.
        self._serial = threading.Lock() if history is not None else None

    @property
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
        return self._plan.history

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).rstrip(".") or type(exc).__name__
        if self._secret:
            text = text.replace(self._secret, "***")
        return text

    def _unreachable(self, exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"Cannot reach the Redis store {self._shown}: {self._clean(exc)}. Check that the "
            "server is running and that the URL (host, port, password) is right; a write that "
            "raised this was applied once or not at all, never twice, so retrying it with an "
            "idempotency_key is safe."
        )

    def _refused(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"The Redis store {self._shown} refused an operation: {self._clean(exc)}. Nothing "
            "was written; check the server's logs and memory limit, and that nothing else "
            "writes the namespace's keys."
        )


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise BackendUnavailableError(
            "Redis stores need the redis package, which is not installed. Install it with "
            "pip install 'racefree[redis]' (or pip install redis)."
        ) from exc
    return redis


def _client_options(redis: Any) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # redis-py's own retries would send a command again without our record key.
    return {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 5.0}


class RedisBackend(_RedisBase, Backend):
    """Redis with the blocking redis-py client (see the module docstring)."""

    def __init__(self, url: str, *, history: History | None = None) -> None:
        super().__init__(url, history=history)
        redis = _redis()
        self._errors = redis.exceptions
        try:
            self._client = redis.Redis.from_url(self._client_url, **_client_options(redis))
            self._client.ping()
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            raise self._unreachable(exc) from exc
        except self._errors.RedisError as exc:
            raise self._unreachable(exc) from exc
        except ValueError as exc:
            raise UsageError(
                f"The Redis store URL {self._shown!r} is malformed: {self._clean(exc)}. Write "
                "redis://[:password@]host:port/db."
            ) from exc
        self._scripts = {
            name: self._client.register_script(source) for name, source in _SCRIPTS.items()
        }

    def execute(self, op: Op) -> Any:
        """Carry out one op through Redis scripts (see ``Backend.execute``)."""
        if getattr(self._plan.local, "in_user_code", False):
            raise reentrant_call_error(op)
        if self._serial is not None:
            with self._serial:
                return self._execute(op)
        return self._execute(op)

    def _execute(self, op: Op) -> Any:
        token = self._plan.token()
        errors = self._errors
        for attempt in range(CONNECTION_ATTEMPTS):
            steps = self._plan.steps(op, token)
            try:
                script, keys, args = next(steps)
                while True:
                    reply = self._scripts[script](keys=keys, args=args)
                    script, keys, args = steps.send(reply)
            except StopIteration as done:
                return done.value
            except (errors.ConnectionError, errors.TimeoutError) as exc:
                if attempt == CONNECTION_ATTEMPTS - 1:
                    raise self._unreachable(exc) from exc
            except errors.RedisError as exc:
                raise self._refused(exc) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class AsyncRedisBackend(_RedisBase, AsyncBackend):
    """Redis with redis-py's asyncio client (``redis.asyncio``); nothing blocks the loop."""

    def __init__(self, url: str, *, history: History | None = None) -> None:
        super().__init__(url, history=history)
        redis = _redis()
        from redis import asyncio as redis_asyncio

        self._errors = redis.exceptions
        self._async_serial: asyncio.Lock | None = None
        # Fail now when the server cannot be reached (a short blocking check at open).
        RedisBackend(url).close()
        # A pool that waits for a free connection instead of failing when a thousand
        # tasks call at once (redis.asyncio's default pool raises past 100).
        pool = redis_asyncio.BlockingConnectionPool.from_url(
            self._client_url, **_client_options(redis)
        )
        self._client = redis_asyncio.Redis.from_pool(pool)
        self._scripts = {
            name: self._client.register_script(source) for name, source in _SCRIPTS.items()
        }

    async def execute(self, op: Op) -> Any:
        """Carry out one op through Redis scripts (see ``Backend.execute``)."""
        if self._serial is None:
            return await self._execute(op)
        if self._async_serial is None:
            self._async_serial = asyncio.Lock()
        async with self._async_serial:  # with a history: one op at a time (see _RedisBase)
            return await self._execute(op)

    async def _execute(self, op: Op) -> Any:
        token = self._plan.token()
        errors = self._errors
        for attempt in range(CONNECTION_ATTEMPTS):
            steps = self._plan.steps(op, token)
            try:
                script, keys, args = next(steps)
                while True:
                    reply = await self._scripts[script](keys=keys, args=args)
                    script, keys, args = steps.send(reply)
            except StopIteration as done:
                return done.value
            except (errors.ConnectionError, errors.TimeoutError) as exc:
                if attempt == CONNECTION_ATTEMPTS - 1:
                    raise self._unreachable(exc) from exc
            except errors.RedisError as exc:
                raise self._refused(exc) from exc
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def open_sync(url: str, *, history: History | None) -> RedisBackend:
    """Connect to the Redis store at ``url``."""
    return RedisBackend(url, history=history)


def open_async(url: str, *, history: History | None) -> AsyncRedisBackend:
    """Connect to the Redis store at ``url`` for asyncio."""
    return AsyncRedisBackend(url, history=history)
