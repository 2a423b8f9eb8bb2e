"""Transforms: write new samples derived from existing ones, with `parent_id` set.

- `token_edit`: the ToEdit token editor (a prior model edits human text token by token).
"""
from .token_edit import EditConfig, EditResult, edit

__all__ = ["EditConfig", "EditResult", "edit"]
