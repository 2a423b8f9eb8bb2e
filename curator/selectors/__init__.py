"""Selectors (candidates in, kept rows with a weight and a reason out), mixing policies, the verifier audit
and the boosting label budget. See `base.py` for the contract and `pipeline.py` for a select run."""
from __future__ import annotations

from .base import CANDIDATE_SCHEMA, SelectContext, Selector, keep
from .registry import available, create, register, selector_class

__all__ = ["CANDIDATE_SCHEMA", "SelectContext", "Selector", "keep", "available", "create", "register", "selector_class"]
