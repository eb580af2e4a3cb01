"""Exploration strategies, one per module, behind :class:`Strategy` (see ``base``)."""

from __future__ import annotations
