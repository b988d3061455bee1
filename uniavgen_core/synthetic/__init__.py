"""Deterministic synthetic talking-face clips for training and lip-sync evaluation.

`sentences` writes toy English, `speech` speaks it with espeak-ng, `faces` draws cartoon faces,
`mouth` turns the speech into mouth opening, `clips` puts them together (`make_clip(seed)`) and
`preview` writes a contact sheet."""
from .clips import Clip, make_clip

__all__ = ["Clip", "make_clip"]
