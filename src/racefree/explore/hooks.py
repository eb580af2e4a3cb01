"""``racefree.explore.hooks`` is :mod:`racefree.hooks`, kept at its old name for users.

The scheduling point lives beside ``history.py`` because the store and
``track`` (the fix pillar) call it; the explorer only sets who answers it.
Both names are one module object, so ``hooks._scheduler`` set through either
is seen through the other.
"""

from __future__ import annotations

import sys

from racefree import hooks as _ground
from racefree.hooks import READ_KINDS, is_read, note, point
from racefree.hooks import _scheduler as _scheduler  # for the type checker; see below

__all__ = ["READ_KINDS", "is_read", "note", "point"]

sys.modules[__name__] = _ground
