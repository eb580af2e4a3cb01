"""The Redis backend (``redis://host:port/db``, ``rediss://`` for TLS): many machines.

Every op reaches Redis as Lua scripts (or one plain command), and Redis
runs each script atomically, whichever machine sent it; each script is one
``EVALSHA``, one round trip.

Without a history attached, every single-key write (``set``,
``compare_and_set``, ``increment`` (but of a long int), ``append``, ``extend``,
``append_turn``, ``claim``) is one call of the ``lean`` script, a few
commands per op (the version, kind and writer in one ``HSET``, the record
with them); ``get`` is one ``HMGET`` (a key's version and value are one
hash), plus one ``read`` script when the key holds a list; ``update`` an
``HMGET``, the function, and one ``lean`` write at the version read.
Everything else, and every op while a history is recorded, goes through the
generic scripts below.

Every single-key write, ``apply`` whose reducers are all ``add``, ``append``
or ``last_value``, and a transaction's commit: one generic ``write`` script
checks, decides and writes in one step, the idempotency record and the
versions with it. It does Python's arithmetic exactly
(integers of any length up to 4,300 digits, floats as IEEE doubles) and
appends with ``RPUSH``, never reading the list. When it must refuse the op
(a version that moved, a key of the wrong type) it writes nothing and
answers with the key's state; the shared decision then raises the same
error as on every backend. ``get`` is one ``read`` script.

``update`` and ``apply`` through other reducers, which run Python code:

* ``read``: the state (version, last writer, value) of the op's keys, and the
  idempotency record if there is one, in one atomic step. A list's items are
  not read when the decision does not need them
  (:func:`~racefree.state._core.needs_items`).
* the store decides in Python (the shared, I/O-free :mod:`~racefree.state._core`);
* ``write`` again, with a version check per key: if every key is still at
  the version read, it writes the effects and the op's record; otherwise it
  writes nothing and the store runs the op again
  (:class:`~racefree.state.backends.base.RetryOperation`: optimistic
  concurrency, like ``WATCH``/``MULTI``/``EXEC`` but in one round trip).

A transaction's reads are ``read`` scripts (one per key) and its commit one
``write`` script that checks the versions read and folds the buffered writes
(set, extend, increment) inside Redis. While a history is recorded the
commit is read, decided and written as ``update`` is, since its events need
the values the decision computes.

The scripts go straight to a connection, packed here (redis-py's general
command path, and its pool's checkout, cost more per op than the script's
work in Redis): the connections are made by redis-py's pool, which closes
them with the store, and handed out by the backend, which lets at most
``max_connections`` callers in at once.

Threads (and asyncio tasks) take a place in the connection pool first come,
first served (``?max_connections=N``, default 64; ``?pool_timeout=SECONDS``,
default 30). URLs are checked here before redis-py sees them, and every
message masks their credentials.

**Exactly once over a dropped connection.** Every write carries a record key:
the caller's ``idempotency_key``, or else a fresh private token that expires
after ten minutes. The script that writes also stores the op's result under
that key, in the same atomic step. When the connection drops before the
answer arrives, the backend reconnects and sends the same op with the same
key: if the first attempt was applied, Redis answers with its recorded result
instead of writing again; if not, the write happens now. (A fresh token
cannot have a record yet, so the ``lean`` script looks one up only for an
idempotency key and for an op sent again.) redis-py's own
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
import functools
import hashlib
import itertools
import os
import re
import threading
import uuid
from collections.abc import AsyncGenerator, Generator
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from racefree.errors import BackendUnavailableError, StoreError, UsageError
from racefree.history import History
from racefree.state._core import (
    EMPTY,
    EXTEND,
    PUT,
    RUNS_USER_CODE,
    Decision,
    KeyState,
    Op,
    decide,
    decide_all,
    describe_events,
    needs_items,
    replay,
)
from racefree.state.backends import credentials, redact, scrub
from racefree.state.backends._shared import (
    FairSemaphore,
    dumps,
    loads,
    loads_list,
    loads_record,
    query_options,
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
# Each store keeps a pool of at most this many connections (?max_connections=N);
# an op that finds them all busy waits up to ?pool_timeout=SECONDS for one.
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 30.0
_POOL_EMPTY = "No connection available."  # what redis-py's blocking pools raise on timeout

_READ_ONLY = frozenset({"get", "snapshot", "versions"})
_APPENDS = frozenset({"append", "extend", "append_turn"})
_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

# Every write, in one round trip: the script checks, decides and writes in
# one atomic step, or writes nothing. It carries out the ops whose decision
# needs nothing but the keys' current state (set, compare_and_set, increment,
# append, extend, append_turn, claim, apply whose reducers are all add, append
# or last_value, and a transaction's commit), and it commits the effects of an
# op decided in Python (update, other reducers) if its keys are still at the
# versions read.
# KEYS: record key, key set, then meta, list per key.
# ARGV (few, since every one is packed and parsed): writer ('' = none, else
# '=' + name), the record's text (up to the result, or whole for shape 'r'),
# then the result's shape followed by the seconds to keep the record (0 =
# forever), such as 'i600'; then per key: key, spec, arguments. Shapes: 'n'
# new version of the first key, 'v' its new value, 'i' the first new index,
# 'b' whether the claim holds, 'd' a dict of key -> new version of the keys
# written, 'r' the record is given whole. A spec is a run of letter + number:
# checks 'v' (the version must be N) and 'w' (last-value: refused when another
# agent wrote the key after version N), then steps that take N arguments,
# folded in order on the key's value: 'p' put the JSON text, 'P' put a list of
# N items, 'x' extend by N items, 'a' add the number, 'o' claim for the owner
# (writes only when the key holds nothing). Such as 'x1', 'v4p1', 'w2P3'.
# Answers {0, record} for a replay; {1, then per key: version, extra, was a
# list, wrote} (extra: the new JSON text of a value, the first new index of a
# list, or what a claim found: the text, or the items of a list), or only
# {1, result} when the shape is given in upper case (no history is recorded,
# so the caller needs the result alone: a shorter answer to parse); or, writing
# nothing, {2, n, kind, text, version, writer, why} with the state of the n-th
# key (from 1) when a check ('v') or a step ('s') refused it: the store then
# raises the decision's own error. The record is stored when a key was
# written, or under an idempotency key (kept forever).
_WRITE = """
local done = redis.call('GET', KEYS[1])
if done then return {0, done} end
-- Python's exact arithmetic, built only for an op that adds (closures cost
-- time in every call that makes them)
local function arithmetic()
  local MAX_DIGITS = 4300
  local function mag_add(a, b)
    local out, carry, i, j = {}, 0, #a, #b
    while i > 0 or j > 0 or carry > 0 do
      local s = carry
      if i > 0 then s = s + string.byte(a, i) - 48; i = i - 1 end
      if j > 0 then s = s + string.byte(b, j) - 48; j = j - 1 end
      if s >= 10 then s = s - 10; carry = 1 else carry = 0 end
      out[#out + 1] = s
    end
    return string.reverse(table.concat(out))
  end
  local function mag_sub(a, b)
    local out, borrow, i, j = {}, 0, #a, #b
    while i > 0 do
      local s = string.byte(a, i) - 48 - borrow
      if j > 0 then s = s - (string.byte(b, j) - 48); j = j - 1 end
      if s < 0 then s = s + 10; borrow = 1 else borrow = 0 end
      out[#out + 1] = s
      i = i - 1
    end
    local r = string.gsub(string.reverse(table.concat(out)), '^0+', '')
    if r == '' then return '0' end
    return r
  end
  local function int_add(x, y)
    if #x < 16 and #y < 16 then return string.format('%.0f', tonumber(x) + tonumber(y)) end
    local xn, yn = string.sub(x, 1, 1) == '-', string.sub(y, 1, 1) == '-'
    local xm, ym = x, y
    if xn then xm = string.sub(x, 2) end
    if yn then ym = string.sub(y, 2) end
    local negative, mag = xn, nil
    if xn == yn then
      mag = mag_add(xm, ym)
    elseif #xm > #ym or (#xm == #ym and xm > ym) then
      mag = mag_sub(xm, ym)
    elseif xm == ym then
      return '0'
    else
      mag, negative = mag_sub(ym, xm), yn
    end
    if #mag > MAX_DIGITS then return nil end
    if negative then return '-' .. mag end
    return mag
  end
  local function add(text, amount)
    local c = string.sub(text, 1, 1)
    if c ~= '-' and (c < '0' or c > '9') then return nil end
    if string.find(text, '^-?%d+$') and string.find(amount, '^-?%d+$') then
      return int_add(text, amount)
    end
    local r = tonumber(text) + tonumber(amount)
    if r ~= r or r == math.huge or r == -math.huge then return nil end
    local out = string.format('%.17g', r)
    if not string.find(out, '[.eEn]') then out = out .. '.0' end
    return out
  end
  return add
end
local add = nil
local writer = false
if ARGV[1] ~= '' then writer = string.sub(ARGV[1], 2) end
local plans = {}
local a, k, n = 4, 3, 0
while a <= #ARGV do
  n = n + 1
  local f = redis.call('HMGET', KEYS[k], 'k', 'v', 'n', 'w')
  local kind, text, version = f[1], f[2], tonumber(f[3] or '0')
  -- mode: 'e' nothing, 'j' the JSON text cur, 'k' the stored list plus the
  -- ranges of ARGV pushed after it, 'l' a new list of those ranges only
  local mode, cur, ranges = 'j', text, {}
  if not kind then mode = 'e' elseif kind == 'l' then mode = 'k' end
  local wrote, why = false, nil
  local i = a + 2
  for code, count in string.gmatch(ARGV[a + 1], '(%a)(%d+)') do
    count = tonumber(count)
    local empty = mode == 'e' or (mode == 'j' and cur == 'null')
    if code == 'v' then
      if version ~= count then why = 'v' end
    elseif code == 'w' then
      if version > count and f[4] ~= writer then why = 's' end
    else
      wrote = true
      if code == 'p' then
        mode, cur, ranges = 'j', ARGV[i], {}
      elseif code == 'P' then
        mode, ranges = 'l', {{i, count}}
      elseif code == 'x' then
        if empty then mode, ranges = 'l', {{i, count}}
        elseif mode == 'j' then why = 's'
        else ranges[#ranges + 1] = {i, count} end
      elseif code == 'a' then
        if empty then mode, cur = 'j', ARGV[i]
        elseif mode == 'j' then
          add = add or arithmetic()
          cur = add(cur, ARGV[i])
          if not cur then why = 's' end
        else why = 's' end
      elseif code == 'o' then
        if empty then mode, cur = 'j', ARGV[i] else wrote = false end
      end
      i = i + count
    end
    if why then return {2, n, kind, text, version, f[4], why} end
  end
  plans[n] = {k = k, a = a, kind = kind, w = f[4], version = version, mode = mode,
              cur = cur, ranges = ranges, wrote = wrote}
  a = i
  k = k + 2
end
local out, parts, any = {1}, {}, false
for _, p in ipairs(plans) do
  local meta, list, mode = KEYS[p.k], KEYS[p.k + 1], p.mode
  local version, extra = p.version, 0
  if not p.wrote then
    -- a claim that found the key held: what it holds, for the caller
    if mode == 'k' then extra = redis.call('LRANGE', list, 0, -1) else extra = p.cur end
  else
    any = true
    if mode == 'j' then
      if p.kind == 'l' then redis.call('DEL', list) end
      redis.call('HSET', meta, 'k', 'j', 'v', p.cur)
      extra = p.cur
    else
      if mode == 'l' and p.kind == 'l' then redis.call('DEL', list) end
      local length, pushed = 0, 0
      for _, r in ipairs(p.ranges) do
        local first, last = r[1], r[1] + r[2] - 1
        for j = first, last, 1000 do
          length = redis.call('RPUSH', list, unpack(ARGV, j, math.min(j + 999, last)))
        end
        pushed = pushed + r[2]
      end
      if pushed == 0 and mode == 'k' then length = redis.call('LLEN', list) end
      extra = length - pushed
      if p.kind ~= 'l' then
        redis.call('HSET', meta, 'k', 'l')
        redis.call('HDEL', meta, 'v')
      end
    end
    version = redis.call('HINCRBY', meta, 'n', 1)
    if writer then
      if p.w ~= writer then redis.call('HSET', meta, 'w', writer) end
    elseif p.w then
      redis.call('HDEL', meta, 'w')
    end
    if not p.kind then redis.call('SADD', KEYS[2], ARGV[p.a]) end
    -- the key as JSON text: printable keys need only '"' and '\\' escaped
    local quoted = string.gsub(ARGV[p.a], '[\\\\"]', '\\\\%0')
    parts[#parts + 1] = '"' .. quoted .. '":' .. version
  end
  out[#out + 1] = version
  out[#out + 1] = extra
  out[#out + 1] = (p.kind == 'l') and 1 or 0
  out[#out + 1] = p.wrote and 1 or 0
end
local given, seconds = string.sub(ARGV[3], 1, 1), string.sub(ARGV[3], 2)
local shape = string.lower(given)
local record, result = ARGV[2], nil
if shape ~= 'r' then
  if shape == 'n' then result = out[2]
  elseif shape == 'v' or shape == 'i' then result = out[3]
  elseif shape == 'b' then
    result = (any or (out[4] == 0 and out[3] == ARGV[6])) and 'true' or 'false'
  else result = '{' .. table.concat(parts, ',') .. '}' end
  record = record .. result .. ']'
end
if any or seconds == '0' then
  if seconds == '0' then
    redis.call('SET', KEYS[1], record)
  else
    redis.call('SET', KEYS[1], record, 'EX', seconds)
  end
end
if given ~= shape then return {1, result} end
return out
"""

# KEYS: meta1, list1, meta2, list2, ..., then the record key if ARGV[1] == '1'.
# ARGV[2]: one character per key, '1' when a list's items are needed ('0': the
# decision only needs to know that it is a list, so it is not read).
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
  if f[3] == 'l' and string.sub(ARGV[2], (i + 1) / 2, (i + 1) / 2) == '1' then
    items = redis.call('LRANGE', KEYS[i + 1], 0, -1)
  end
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

# One single-key write with no history attached, each kind in a few commands
# (the generic write script parses a spec and folds steps: about twice the
# server time). KEYS: record key, key set, meta, list. ARGV: the op ('s'
# set, 'c' compare_and_set, 'u' the commit of an update decided in Python,
# 'i' increment, 'a' append or extend, 'o' claim; in upper case when the
# record key may hold a record already: an idempotency key, or an op sent
# again after a dropped connection; a fresh private token cannot), writer
# ('' = none, else '=' + name), the record's text up to the result, the
# seconds to keep the record (0 = forever), the key, then the op's
# arguments: the JSON text (s, c, u, o; c and u then the expected version),
# the amount (i), the items' texts (a). The version, the kind and the writer
# go in one HSET. Answers {1, result}; {0, record} for a replay; or {2, kind,
# text, version, writer}, writing nothing, when the op is refused or needs
# Python (an increment of an int of more than 15 digits, or one whose sum is
# no finite float): the shared decision then raises the error, or the generic
# script carries the op out.
_LEAN = """
local op = string.lower(ARGV[1])
local meta, list = KEYS[3], KEYS[4]
if op ~= ARGV[1] then
  local done = redis.call('GET', KEYS[1])
  if done then return {0, done} end
end
local f = redis.call('HMGET', meta, 'k', 'v', 'n', 'w')
local kind, text, version, last = f[1], f[2], tonumber(f[3] or '0'), f[4]
local empty = not kind or (kind == 'j' and text == 'null')
local new, result = version + 1, nil
local fields = {'n', new}
local recorded = nil
if op == 's' or op == 'c' or op == 'u' then
  if op ~= 's' and version ~= tonumber(ARGV[7]) then return {2, kind, text, version, last} end
  if kind == 'l' then redis.call('DEL', list) end
  fields[3], fields[4], fields[5], fields[6] = 'k', 'j', 'v', ARGV[6]
  result = new
  if op == 'u' then recorded = ARGV[6] end
elseif op == 'i' then
  local amount = ARGV[6]
  if empty then
    result = amount
  elseif kind ~= 'j' or not string.find(text, '^-?%d') then
    return {2, kind, text, version, last}  -- no number: the decision's error
  elseif string.find(text, '^-?%d+$') and string.find(amount, '^-?%d+$') then
    -- two ints: exact in a double below 2^53, else Python's arithmetic
    if #text > 15 or #amount > 15 then return {2, kind, text, version, last} end
    result = string.format('%.0f', tonumber(text) + tonumber(amount))
  else
    -- a float: IEEE doubles as in Python, written so that it reads back as one
    local sum = tonumber(text) + tonumber(amount)
    if sum ~= sum or sum == math.huge or sum == -math.huge then
      return {2, kind, text, version, last}
    end
    result = string.format('%.17g', sum)
    if not string.find(result, '[.eEn]') then result = result .. '.0' end
  end
  fields[3], fields[4], fields[5], fields[6] = 'k', 'j', 'v', result
elseif op == 'a' then
  if kind == 'j' and not empty then return {2, kind, text, version, last} end
  if kind == 'j' then redis.call('HDEL', meta, 'v') end
  local length, last_item = 0, #ARGV
  for j = 6, last_item, 1000 do
    length = redis.call('RPUSH', list, unpack(ARGV, j, math.min(j + 999, last_item)))
  end
  result = length - (last_item - 5)
  fields[3], fields[4] = 'k', 'l'
else -- 'o'
  if not empty then
    if kind == 'l' or text ~= ARGV[6] then return {1, 0} end
    return {1, 1}
  end
  fields[3], fields[4], fields[5], fields[6] = 'k', 'j', 'v', ARGV[6]
  result = 'true'
end
local writer = ARGV[2]
if writer ~= '' then
  fields[#fields + 1] = 'w'
  fields[#fields + 1] = string.sub(writer, 2)
elseif last then
  redis.call('HDEL', meta, 'w')
end
redis.call('HSET', meta, unpack(fields))
if not kind then redis.call('SADD', KEYS[2], ARGV[5]) end
recorded = ARGV[3] .. (recorded or result) .. ']'
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], recorded)
else
  redis.call('SET', KEYS[1], recorded, 'EX', ARGV[4])
end
if op == 'o' then return {1, 1} end
return {1, result}
"""

_SCRIPTS = {"write": _WRITE, "read": _READ, "read_all": _READ_ALL, "lean": _LEAN}
_SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in _SCRIPTS.items()}


def _pack(parts: list[Any]) -> bytes:
    """One command in the Redis protocol (RESP), ready to send.

    Scripts go straight to a pooled connection, packed here: redis-py's
    general command path (argument encoding, response callbacks, timing
    hooks) cost more per op than the script's own work in Redis.
    """
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if type(part) is str else part if type(part) is bytes else b"%d" % part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _evalsha(script: str, keys: list[str], args: list[Any]) -> bytes:
    """A script call; ``script`` may also be a plain command's name (``HMGET``)."""
    sha = _SHAS.get(script)
    if sha is None:
        return _pack([script, *keys, *args])
    return _pack(["EVALSHA", sha, len(keys), *keys, *args])


# A step of an op: (script name, keys, args); the driver sends it and the reply comes back.
Call = tuple[str, list[str], list[Any]]


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _state(version: Any, writer: Any, kind: Any, text: Any, items: list[Any]) -> KeyState:
    if kind is None:
        return KeyState(None, 0, None)
    value = loads_list(items) if _text(kind) == "l" else loads(text)
    return KeyState(value, int(version), _text(writer) if writer is not None else None)


# The query options a Redis store URL may carry: racefree's own, then the
# redis-py connection options that make sense in a URL (redis-py parses those).
_OWN_OPTIONS: dict[str, type] = {"namespace": str, "max_connections": int, "pool_timeout": float}
_CLIENT_OPTIONS: dict[str, type] = {
    "db": int,
    "username": str,
    "password": str,
    "client_name": str,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "health_check_interval": int,
    "protocol": int,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
}


class Settings(NamedTuple):
    """A Redis store URL, checked: what redis-py gets and what racefree keeps."""

    client_url: str  # redis-py's URL: racefree's own options removed
    namespace: str
    max_connections: int  # the pool's size
    pool_timeout: float  # how long an op waits for a free connection, in seconds


def settings(url: str) -> Settings:
    """Check a ``redis://`` URL and split it; a malformed one raises ``UsageError``.

    Every part redis-py would choke on (a port or database that is no
    number, an unknown option) is refused here, with the URL masked, so
    redis-py's own messages, which may quote the URL, are never shown.
    """
    shown = redact(url)
    example = (
        "Write redis://[:password@]host:port/db (rediss:// for TLS), for example "
        "redis://127.0.0.1:6379/0."
    )
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise UsageError(
            f"The Redis store URL {shown!r} is malformed: its host or port cannot be read (a "
            "password holding /, ?, # or @ must be percent-encoded, such as %2F for /). " + example
        ) from None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"The Redis store URL {shown!r} has a port outside 1 to 65535. {example}")
    if not host:
        raise UsageError(f"The Redis store URL {shown!r} names no server. {example}")
    database = unquote(parts.path).strip("/")
    if database and not database.isdigit():
        raise UsageError(
            f"The Redis store URL {shown!r} names the database {database!r}, which is not a "
            f"number. {example}"
        )
    options = query_options(url, {**_OWN_OPTIONS, **_CLIENT_OPTIONS}, shown)
    namespace = options.get("namespace", DEFAULT_NAMESPACE)
    if not _NAMESPACE.fullmatch(namespace):
        raise UsageError(
            f"The namespace {namespace!r} in the store URL {shown!r} is not 1 to 64 letters, "
            "digits or _.:- characters. Choose a plain name such as namespace=agents."
        )
    size = options.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    wait = options.get("pool_timeout", DEFAULT_POOL_TIMEOUT)
    if size < 1 or not wait > 0:
        raise UsageError(
            f"The store URL {shown!r} asks for max_connections={size} and pool_timeout={wait:g}: "
            "give at least one connection and a wait above 0 seconds."
        )
    rest = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in _OWN_OPTIONS
    ]
    client_url = urlunsplit(parts._replace(query=urlencode(rest)))
    return Settings(client_url, namespace, size, wait)


def parse_url(url: str) -> tuple[str, str]:
    """redis-py's URL (without racefree's own options) and the namespace."""
    checked = settings(url)
    return checked.client_url, checked.namespace


_SLOW = object()  # the write script declined an op: decide it in Python
_LEAN_CODES = {
    "get": "g",
    "set": "s",
    "compare_and_set": "c",
    "increment": "i",
    "append": "a",
    "extend": "a",
    "append_turn": "a",
    "claim": "o",
}
_TOKEN_SECONDS = str(TOKEN_SECONDS)
_META_FIELDS = ["k", "v", "n"]
_LIST_KIND = (b"l", "l")


@functools.lru_cache(maxsize=1024)
def _record_head(name: str, key: str) -> str:
    """The start of a single-key op's record text, up to its result (see ``record_text``)."""
    return dumps([name, [key]])[:-1] + ","


_NATIVE_REDUCERS = frozenset({"add", "append", "last_value"})

# A key's part of a write-script call: its spec ('v4p1') and the spec's arguments.
Spec = tuple[str, list[str]]


def _put(value: Any, check: str = "") -> Spec:
    """A put of ``value`` after ``check``: a list is stored as a Redis list ('P')."""
    if type(value) is list:
        return f"{check}P{len(value)}", [dumps(item) for item in value]
    return f"{check}p1", [dumps(value)]


def _extend(items: list[Any], check: str = "") -> Spec:
    texts = [dumps(item) for item in items]
    return f"{check}x{len(texts)}", texts


def _native(op: Op, recording: bool) -> tuple[str, list[Spec]] | None:
    """How the ``write`` script carries out ``op`` by itself: the result's shape, a spec per key.

    ``None`` for an op that needs a decision in Python (a custom or merge
    reducer, ``update``'s function, a read), and for a transaction's commit
    while a history is recorded (its events need the values the decision
    computes).
    """
    name = op.name
    if name in _APPENDS:
        return "i", [_extend(op.args[0])]
    if name == "increment":
        return "v", [("a1", [dumps(op.args[0])])]
    if name == "set":
        return "n", [_put(op.args[0])]
    if name == "compare_and_set":
        return "n", [_put(op.args[0], f"v{op.args[1]}")]
    if name == "claim":
        return "b", [("o1", [dumps(op.args[0])])]
    if name == "apply":
        specs = []
        for value, reducer, base in op.args:
            if reducer not in _NATIVE_REDUCERS:
                return None
            if reducer == "append":
                specs.append(_extend(value))
            elif reducer == "add":
                specs.append(("a1", [dumps(value)]))
            else:
                specs.append(_put(value, f"w{base}"))
        return "d", specs
    if name == "commit" and not recording:
        specs = []
        for read_version, pending in op.args:
            spec = "" if read_version is None else f"v{read_version}"
            texts: list[str] = []
            for kind, arg in pending:
                if kind == "set":
                    step, more = _put(arg)
                elif kind == "extend":
                    step, more = _extend(arg)
                else:
                    step, more = "a1", [dumps(arg)]
                spec += step
                texts += more
            specs.append((spec, texts))
        return "d", specs
    return None


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

    def lean(self, op: Op, token: str, resent: bool) -> Call | None:
        """The one call that carries out ``op``, or None when the generic steps do.

        Only without a history (the events need what the generic script
        answers) and for a single-key op whose value is no list (a list is
        stored as a Redis list: the generic script's ``P`` step). ``get`` is
        a plain ``HMGET`` (atomic by itself); ``resent``: the op was sent
        before, so its record may exist.
        """
        code = _LEAN_CODES.get(op.name)
        if code is None or self.history is not None:
            return None
        key: str = op.keys[0]  # type: ignore[index]
        meta = self.prefix + ":m:" + key
        if code == "g":
            return ("HMGET", [meta], _META_FIELDS)
        arg = op.args[0]
        if code == "a":
            if not arg:
                return None  # an empty extend still raises the version: the generic script
            texts = [dumps(item) for item in arg]
        elif type(arg) is list:
            return None
        else:
            texts = [dumps(arg)]
            if code == "c":
                texts.append(str(op.args[1]))
        return self._lean_write(op, token, resent, code, key, texts)

    def _lean_write(
        self, op: Op, token: str, resent: bool, code: str, key: str, texts: list[str]
    ) -> Call:
        if op.idempotency_key is not None:
            record, seconds = f"{self.prefix}:i:{op.idempotency_key}", "0"
            code = code.upper()
        else:
            record, seconds = f"{self.prefix}:t:{token}", _TOKEN_SECONDS
            if resent:
                code = code.upper()
        agent = op.agent
        prefix = self.prefix
        return (
            "lean",
            [record, self.key_set, prefix + ":m:" + key, prefix + ":l:" + key],
            [
                code,
                "" if agent is None else "=" + agent,
                _record_head(op.name, key),
                seconds,
                key,
                *texts,
            ],
        )

    def lean_result(self, op: Op, reply: list[Any]) -> Any:
        """The op's result from the answer to its ``lean`` call; ``_SLOW``: Python decides."""
        name = op.name
        if name == "get":
            kind, text, version = reply
            if kind is None:
                return [None, 0]
            if kind in _LIST_KIND:
                return _SLOW  # the list's items, with its version: the read script
            return [loads(text), int(version)]
        status = reply[0]
        if status == 1:
            answer = reply[1]
            if name == "increment":
                return loads(answer)
            if name == "claim":
                return answer == 1
            return answer  # a version (set, compare_and_set) or the first new index
        if status == 0:
            return replay(op, loads_record(reply[1]))
        # Refused, or beyond the script: the decision raises the same error as
        # on every backend, or decides what the script could not (then the
        # generic script carries it out).
        _, kind, text, version, last = reply
        decide(op, [_state(version, last, kind, text, [])])
        return _SLOW

    def _lean_update(self, op: Op, token: str, resent: bool) -> Generator[Call, Any, Any]:
        """``update`` of a JSON value: ``HMGET``, decide here, a ``u`` write at the version read.

        ``_SLOW`` for a list (read or written): the generic steps then run.
        """
        key: str = op.keys[0]  # type: ignore[index]
        kind, text, version = yield ("HMGET", [self.prefix + ":m:" + key], _META_FIELDS)
        if kind in _LIST_KIND:
            return _SLOW
        state = KeyState(None if kind is None else loads(text), int(version or 0), None)
        self.local.in_user_code = True
        try:
            value = decide(op, [state]).result
        finally:
            self.local.in_user_code = False
        if type(value) is list:
            return _SLOW
        write = self._lean_write(op, token, resent, "u", key, [dumps(value), str(state.version)])
        reply = yield write
        status = reply[0]
        if status == 1:
            return value
        if status == 0:
            return replay(op, loads_record(reply[1]))
        raise RetryOperation(key, state.version, int(reply[3]))

    def _write(
        self, op: Op, token: str, writer: str, shape: str, specs: list[Spec]
    ) -> Generator[Call, Any, Any]:
        """One op carried out by the ``write`` script; ``_SLOW`` if it must be decided here."""
        keys: tuple[str, ...] = op.keys  # type: ignore[assignment]
        prefix = self.prefix
        record, seconds = self.record_key(op, token)
        names: list[str] = [record, self.key_set]
        short = self.history is None
        given = shape.upper() if short else shape
        args: list[Any] = [writer, dumps([op.name, list(keys)])[:-1] + ",", f"{given}{seconds}"]
        for key, (spec, texts) in zip(keys, specs, strict=True):
            names += (f"{prefix}:m:{key}", f"{prefix}:l:{key}")
            args += (key, spec, *texts)
        reply = yield ("write", names, args)
        status = reply[0]
        if status == 0:
            return replay(op, loads_record(reply[1]))
        if status == 2:
            # Refused: the decision, given the state the script saw, raises the
            # same error as on every other backend (the keys before it passed).
            _, index, kind, text, version, last, why = reply
            if op.name == "commit":
                if _text(why) != "v":  # a step refused: only the whole decision knows why
                    return _SLOW
                states = [KeyState(None, read or 0, None) for read, _ in op.args]
            else:
                states = [EMPTY] * len(keys)
            states[index - 1] = _state(version, last, kind, text, [])
            decide(op, states)
            return _SLOW  # the script and the decision disagree: let the decision decide
        if short:
            answer = reply[1]
            if shape in "ni":
                return answer
            if shape == "b":
                return _text(answer) == "true"
            return loads(answer)  # 'v' the new value, 'd' the versions
        rows = [reply[1 + 4 * i : 5 + 4 * i] for i in range(len(keys))]
        result: Any
        if shape == "n":
            result = rows[0][0]
        elif shape == "v":
            result = loads(rows[0][1])
        elif shape == "i":
            result = rows[0][1]
        elif shape == "b":
            _, found, was_list, wrote = rows[0]
            result = bool(wrote) or (not was_list and _text(found) == specs[0][1][0])
        else:
            result = {key: row[0] for key, row in zip(keys, rows, strict=True) if row[3]}
        if self.history is not None:
            self._record(op, keys, specs, rows, result)
        return result

    def _record(
        self,
        op: Op,
        keys: tuple[str, ...],
        specs: list[Spec],
        rows: list[list[Any]],
        result: Any,
    ) -> None:
        """The events of an op the ``write`` script carried out, from its answer.

        A written key's event needs only the version read (one below the new
        one) and the effect, which the op itself holds; a claim that wrote
        nothing read what the script handed back.
        """
        states: list[KeyState] = []
        effects = []
        for i, (key, (spec, _), row) in enumerate(zip(keys, specs, rows, strict=True)):
            version, extra, was_list, wrote = row
            if not wrote:
                value = loads_list(extra) if was_list else loads(extra)
                states.append(KeyState(value, version, None))
                continue
            states.append(KeyState(None, version - 1, None))
            value = op.args[0] if op.name != "apply" else op.args[i][0]
            step = spec.rstrip("0123456789")[-1]
            if step == "a":
                effects.append((PUT, key, loads(extra)))
            elif step == "x":
                effects.append((EXTEND if was_list else PUT, key, value))
            else:
                effects.append((PUT, key, value))
        decision = Decision(result, tuple(effects))
        for event in describe_events(op, keys, states, decision):
            self.history.record(**event)  # type: ignore[union-attr]

    def steps(self, op: Op, token: str, resent: bool = False) -> Generator[Call, Any, Any]:
        prefix = self.prefix
        name = op.name
        if name == "update" and self.history is None:
            decided = yield from self._lean_update(op, token, resent)
            if decided is not _SLOW:
                return decided
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
        native = _native(op, self.history is not None)
        if native is not None:
            decided = yield from self._write(op, token, writer, *native)
            if decided is not _SLOW:
                return decided
        names: list[str] = []
        for key in keys:
            names += (f"{prefix}:m:{key}", f"{prefix}:l:{key}")
        writes = name not in _READ_ONLY
        record, seconds = self.record_key(op, token)
        flags = "".join("1" if need else "0" for need in needs_items(op))
        reply = yield (
            "read",
            [*names, record] if writes else names,
            ["1" if writes else "0", flags],
        )
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
        # Commit the decision: the write script applies its effects only if
        # every key is still at the version read ('v' checks).
        effects = {key: (kind, payload) for kind, key, payload in decision.effects}
        args: list[Any] = [writer, record_text(op, decision.result), f"r{seconds}"]
        for key, state in zip(keys, states_list, strict=True):
            effect = effects.get(key)
            check = f"v{state.version}"
            if effect is None:
                spec: Spec = (check, [])
            elif effect[0] == EXTEND:
                spec = _extend(effect[1], check)
            else:
                spec = _put(effect[1], check)
            args += (key, spec[0], *spec[1])
        reply = yield ("write", [record, self.key_set, *names], args)
        status = reply[0]
        if status == 0:
            return replay(op, loads_record(reply[1]))
        if status == 2:
            index, version = reply[1], int(reply[4])
            raise RetryOperation(keys[index - 1], states_list[index - 1].version, version)
        if self.history is not None:
            for event in describe_events(op, keys, states_list, decision):
                self.history.record(**event)
        return decision.result


class _RedisBase:
    """What both flavours share: the URL, the plan, and the translation of redis-py errors."""

    schemes: tuple[str, ...] = ("redis", "rediss")
    guarantee: str = GUARANTEE
    optimistic: bool = True
    _errors: Any  # redis.exceptions, imported when a store is opened

    def __init__(self, url: str, *, history: History | None) -> None:
        self._url = url  # kept only to scrub its credentials out of redis-py's messages
        self._shown = redact(url)
        self._settings = settings(url)
        self._client_url = self._settings.client_url
        self._plan = _Plan(self._settings.namespace, history)
        # With a history, one op at a time per process, so that the order of
        # the events recorded here is the order in which Redis applied them.
        self._serial = threading.Lock() if history is not None else None

    @property
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
        return self._plan.history

    def _clean(self, exc: BaseException) -> str:
        return scrub(str(exc).rstrip(".") or type(exc).__name__, self._url)

    def _translated(self, error: StoreError, exc: BaseException) -> StoreError:
        """``error`` caused by ``exc``, unless some text in ``exc``'s chain holds a credential.

        A traceback prints every chained exception's text, and redis-py's may
        quote the password it was given: such a chain is cut.
        """
        secrets = credentials(self._url)
        cause: BaseException | None = exc
        while cause is not None:
            if any(secret in str(cause) for secret in secrets):
                error.__cause__ = None
                break
            cause = cause.__cause__ or cause.__context__
        else:
            error.__cause__ = exc
        error.__suppress_context__ = True
        return error

    def _pool_wait(self) -> BackendUnavailableError:
        size, wait = self._settings.max_connections, self._settings.pool_timeout
        return BackendUnavailableError(
            f"All {size} connections of the Redis store {self._shown} stayed busy for "
            f"{wait:g} s, so this operation was not sent; the server itself may be "
            "fine. Nothing was written; use fewer threads or tasks per store, or raise "
            "?max_connections=N or ?pool_timeout=SECONDS in the URL."
        )

    def _error(self, exc: BaseException) -> StoreError:
        """The store's error for an exception of redis-py's."""
        if isinstance(exc, self._errors.ConnectionError) and str(exc) == _POOL_EMPTY:
            return self._translated(self._pool_wait(), exc)
        if isinstance(exc, (self._errors.ConnectionError, self._errors.TimeoutError)):
            return self._translated(
                BackendUnavailableError(
                    f"Cannot reach the Redis store {self._shown}: {self._clean(exc)}. Check that "
                    "the server is running and that the URL (host, port, password) is right; a "
                    "write that raised this was applied once or not at all, never twice, so "
                    "retrying it with an idempotency_key is safe."
                ),
                exc,
            )
        return self._translated(
            StoreError(
                f"The Redis store {self._shown} refused an operation: {self._clean(exc)}. "
                "Nothing was written; check the server's logs and memory limit, and that "
                "nothing else writes the namespace's keys."
            ),
            exc,
        )

    def _resend(self, exc: BaseException, attempt: int) -> bool:
        """True when an op that raised ``exc`` is to be sent again (a dropped connection)."""
        errors = self._errors
        if not isinstance(exc, (errors.ConnectionError, errors.TimeoutError)):
            return False
        return str(exc) != _POOL_EMPTY and attempt < CONNECTION_ATTEMPTS - 1


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise BackendUnavailableError(
            "Redis stores need the redis package, which is not installed. Install it with "
            "pip install 'racefree[redis]' (or pip install redis)."
        ) from exc
    return redis


def _pool_options(checked: Settings, *, for_asyncio: bool = False) -> dict[str, Any]:
    from redis.backoff import NoBackoff

    # redis-py's own retries would send a command again without our record key. The
    # asyncio client takes its own Retry (redis-py 8 warns, and converts, on the other).
    if for_asyncio:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry  # type: ignore[assignment]
    options: dict[str, Any] = {
        "retry": Retry(NoBackoff(), 0),
        "max_connections": checked.max_connections,
        "timeout": checked.pool_timeout,
    }
    if "socket_connect_timeout" not in urlsplit(checked.client_url).query:
        options["socket_connect_timeout"] = 5.0
    return options


class RedisBackend(_RedisBase, Backend):
    """Redis with the blocking redis-py client (see the module docstring)."""

    def __init__(self, url: str, *, history: History | None = None) -> None:
        super().__init__(url, history=history)
        redis = _redis()
        self._errors = redis.exceptions
        # A pool that waits for a free connection (up to pool_timeout) instead
        # of failing when more threads than connections call at once.
        pool = redis.BlockingConnectionPool.from_url(
            self._client_url, **_pool_options(self._settings)
        )
        self._client = redis.Redis.from_pool(pool)
        self._places = FairSemaphore(self._settings.max_connections)
        first = pool.make_connection()  # the first of those _call hands out
        try:
            first.send_command("PING")
            first.read_response()
        except redis.exceptions.RedisError as exc:
            self._client.close()
            error = self._error(exc)
            raise error from error.__cause__
        self._pool = pool
        self._idle: list[Any] = [first]  # connected, no reply pending; see _call
        self._pid = os.getpid()

    def execute(self, op: Op) -> Any:
        """Carry out one op through Redis scripts (see ``Backend.execute``)."""
        if getattr(self._plan.local, "in_user_code", False):
            raise reentrant_call_error(op)
        # Threads queue here, in order, for a place in the pool (redis-py's own
        # blocking pool lets a thread that just gave a connection back take it
        # again first, so under a thousand threads some waited past the timeout).
        if not self._places.acquire(self._settings.pool_timeout):
            raise self._pool_wait()
        try:
            if self._serial is not None:
                with self._serial:
                    return self._execute(op)
            return self._execute(op)
        finally:
            self._places.release()

    def _execute(self, op: Op) -> Any:
        plan = self._plan
        token = plan.token()
        slow = False
        for attempt in range(CONNECTION_ATTEMPTS):
            try:
                lean = None if slow else plan.lean(op, token, attempt > 0)
                if lean is not None:
                    result = plan.lean_result(op, self._call(*lean))
                    if result is not _SLOW:
                        return result
                    slow = True
                steps = plan.steps(op, token, attempt > 0)
                script, keys, args = next(steps)
                while True:
                    reply = self._call(script, keys, args)
                    script, keys, args = steps.send(reply)
            except StopIteration as done:
                return done.value
            except self._errors.RedisError as exc:
                if not self._resend(exc, attempt):
                    error = self._error(exc)
                    raise error from error.__cause__
        raise AssertionError("unreachable")

    def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one script: one ``EVALSHA`` (the first time on a server, a ``SCRIPT LOAD`` too).

        The connections are redis-py's, made by its pool (which closes them
        with the store), but handed out here: ``execute`` lets at most
        ``max_connections`` callers in, so a free connection is always at
        hand, and the pool's own checkout (a queue, a readiness poll of the
        socket, metrics) would cost more than the script's work in Redis. A
        connection is given back only once its reply is read in full, or
        after it was closed: none holds stray data.
        """
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        idle = self._idle
        conn = idle.pop() if idle else self._pool.make_connection()
        try:
            command = _evalsha(script, keys, args)
            conn.send_packed_command([command])
            try:
                return conn.read_response()
            except self._errors.NoScriptError:
                conn.send_packed_command([_pack(["SCRIPT", "LOAD", _SCRIPTS[script]])])
                conn.read_response()
                conn.send_packed_command([command])
                return conn.read_response()
        except self._errors.ResponseError:
            raise  # the server answered: the connection is fine
        except BaseException:
            conn.disconnect()  # a reply may still be on its way: reconnect before reuse
            raise
        finally:
            idle.append(conn)

    def close(self) -> None:
        """Close the connection pool (every connection made; a later op connects afresh)."""
        self._client.close()


class AsyncRedisBackend(_RedisBase, AsyncBackend):
    """Redis with redis-py's asyncio client (``redis.asyncio``); nothing blocks the loop.

    redis-py's asyncio connections belong to the event loop that opened
    them. The store may be used from one loop at a time: when it is used
    from a new loop after the previous one ended (a second ``asyncio.run``),
    it opens fresh connections there; while the previous loop still runs,
    using it from another is refused with ``UsageError``.
    """

    def __init__(self, url: str, *, history: History | None = None) -> None:
        super().__init__(url, history=history)
        redis = _redis()
        self._errors = redis.exceptions
        # Fail now when the server cannot be reached (a short blocking check at open).
        RedisBackend(url).close()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None
        self._client: Any = None
        self._pool: Any = None
        self._async_serial: asyncio.Lock | None = None
        self._async_places: asyncio.Semaphore | None = None

    async def _connect(self) -> None:
        """Connections (and the history's lock) for the running loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and self._loop.is_running():
            raise UsageError(
                f"The asyncio Redis store {self._shown} is in use by another event loop that is "
                "still running. Use one store per event loop: open another with "
                "open_async_store() in this loop (or thread)."
            )
        from redis import asyncio as redis_asyncio

        pool = redis_asyncio.BlockingConnectionPool.from_url(
            self._client_url, **_pool_options(self._settings, for_asyncio=True)
        )
        client = redis_asyncio.Redis.from_pool(pool)
        self._client = client
        self._pool = pool
        self._async_serial = asyncio.Lock() if self._serial is not None else None
        # Tasks queue here, in order, for a place in the pool (see RedisBackend.execute).
        self._async_places = asyncio.Semaphore(self._settings.max_connections)
        self._loop = loop
        # Close these connections while their loop still runs: asyncio.run
        # finalises every live async generator before it closes the loop.
        self._keeper = self._close_at_loop_end(client)
        await self._keeper.__anext__()

    async def _close_at_loop_end(self, client: Any) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._client is client:
                self._client, self._loop = None, None
            await client.aclose()

    async def execute(self, op: Op) -> Any:
        """Carry out one op through Redis scripts (see ``Backend.execute``)."""
        await self._connect()
        places = self._async_places
        assert places is not None  # set by _connect
        try:
            await asyncio.wait_for(places.acquire(), self._settings.pool_timeout)
        except asyncio.TimeoutError:
            raise self._pool_wait() from None
        try:
            if self._async_serial is None:
                return await self._execute(op)
            async with self._async_serial:  # with a history: one op at a time (see _RedisBase)
                return await self._execute(op)
        finally:
            places.release()

    async def _execute(self, op: Op) -> Any:
        plan = self._plan
        token = plan.token()
        slow = False
        for attempt in range(CONNECTION_ATTEMPTS):
            try:
                lean = None if slow else plan.lean(op, token, attempt > 0)
                if lean is not None:
                    result = plan.lean_result(op, await self._call(*lean))
                    if result is not _SLOW:
                        return result
                    slow = True
                steps = plan.steps(op, token, attempt > 0)
                script, keys, args = next(steps)
                while True:
                    reply = await self._call(script, keys, args)
                    script, keys, args = steps.send(reply)
            except StopIteration as done:
                return done.value
            except self._errors.RedisError as exc:
                if not self._resend(exc, attempt):
                    error = self._error(exc)
                    raise error from error.__cause__
        raise AssertionError("unreachable")

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one script (see ``RedisBackend._call``)."""
        pool = self._pool
        conn = await pool.get_connection()
        try:
            command = _evalsha(script, keys, args)
            await conn.send_packed_command([command])
            try:
                return await conn.read_response()
            except self._errors.NoScriptError:
                await conn.send_packed_command([_pack(["SCRIPT", "LOAD", _SCRIPTS[script]])])
                await conn.read_response()
                await conn.send_packed_command([command])
                return await conn.read_response()
        except self._errors.ResponseError:
            raise
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def aclose(self) -> None:
        """Close the connection pool (of the loop that last used the store)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None and self._loop is asyncio.get_running_loop():
            await keeper.aclose()  # its finally closes the connections
        self._client, self._loop = None, None


def open_sync(url: str, *, history: History | None) -> RedisBackend:
    """Connect to the Redis store at ``url``."""
    return RedisBackend(url, history=history)


def open_async(url: str, *, history: History | None) -> AsyncRedisBackend:
    """Connect to the Redis store at ``url`` for asyncio."""
    return AsyncRedisBackend(url, history=history)
