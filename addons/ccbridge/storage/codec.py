"""A captured exchange as the bytes of one journal record, and back.

The record is a pickled dict of the dataclass's fields (plain str, bytes, numbers, lists and dicts): pickle
is in the standard library and the fastest way to write a record that is mostly bytes, which matters
because the proxy encodes in its hook. A dict rather than the object keeps old records readable when a
field is added (it takes its default) or removed (ignored). The journal lives in the user's private data
directory (mode 0700), written and read only by the user's own ccbridge, so unpickling it trusts nothing
that the user does not already control.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from ..captured import CapturedExchange

_FIELDS = {f.name for f in dataclasses.fields(CapturedExchange)}


def pack(captured: CapturedExchange) -> bytes:
    """The record's payload (the exchange's fields by reference: no copy of the bodies before pickling)."""
    return pickle.dumps({name: getattr(captured, name) for name in _FIELDS}, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(payload: bytes) -> CapturedExchange:
    """The exchange again; raises on a payload that is not one."""
    values: dict[str, Any] = pickle.loads(payload)  # our own journal: see the module docstring
    if not isinstance(values, dict):
        raise ValueError(f"not a captured exchange: {type(values).__name__}")
    return CapturedExchange(**{k: v for k, v in values.items() if k in _FIELDS})
