"""Scorers: typed, versioned scores attached to samples (see `base.py` for the contract)."""
from .base import KEY_COLUMNS, NoConfig, ScoreContext, Scorer, make_config
from .registry import ENTRY_POINT_GROUP, available, create, register, scorer_class

__all__ = ["KEY_COLUMNS", "ENTRY_POINT_GROUP", "NoConfig", "ScoreContext", "Scorer", "available", "create",
           "make_config", "register", "scorer_class"]
