"""A captured exchange as the payload of one journal record, and back.

The proxy encodes in its hook, on the event loop, so the encoding must not touch the bodies' bytes: the
payload is a few parts that the journal writes with one `writev()`, the bodies among them as they are.

    tag      4 bytes   b"CCX1"
    length   4 bytes   little-endian, of the fields that follow
    fields   a pickled dict of the dataclass's other fields (str, numbers, lists, dicts), and for each
             bytes field its length (None for a None field); `response_chunks` as a list of lengths
    bodies   request_body, the response chunks one after another, provider_response: raw bytes

A dict rather than the object keeps old records readable when a field is added (it takes its default) or
removed (ignored). Pickle is in the standard library and fast for small plain values; the journal lives
in the user's private data directory (mode 0700), written and read only by the user's own ccbridge, so
unpickling it trusts nothing that the user does not already control. Records of the first journal format
(the whole dict pickled, bodies inside) are still read.
"""

from __future__ import annotations

import dataclasses
import pickle
import struct
from typing import Any

from ..captured import CapturedExchange

TAG = b"CCX1"
_LENGTH = struct.Struct("<I")
_FIELDS = {f.name for f in dataclasses.fields(CapturedExchange)}
_BODIES = ("request_body", "response_chunks", "provider_response")  # in the order their bytes follow
_PICKLED = b"\x80"  # a pickle of protocol 2 or later starts so: the first format


def parts(captured: CapturedExchange) -> list[bytes]:
    """The record's payload in parts, bodies by reference (their concatenation is `pack`)."""
    fields = {name: getattr(captured, name) for name in _FIELDS.difference(_BODIES)}
    request, chunks, provider = captured.request_body, captured.response_chunks, captured.provider_response
    fields["request_body"] = None if request is None else len(request)
    fields["response_chunks"] = [len(chunk) for chunk in chunks]
    fields["provider_response"] = None if provider is None else len(provider)
    meta = pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)
    # one part for the whole answer: a long stream has thousands of chunks, writev() takes 1024 at most
    answer = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return [TAG + _LENGTH.pack(len(meta)) + meta, request or b"", answer, provider or b""]


def pack(captured: CapturedExchange) -> bytes:
    """The record's payload as one string of bytes."""
    return b"".join(parts(captured))


def unpack(payload: bytes) -> CapturedExchange:
    """The exchange again; raises on a payload that is not one."""
    if payload.startswith(_PICKLED):
        values = _loads(payload)
    elif payload.startswith(TAG):
        values = _unframe(memoryview(payload))
    else:
        raise ValueError("not a captured exchange: unknown record format")
    return CapturedExchange(**{k: v for k, v in values.items() if k in _FIELDS})


def _loads(data: bytes | memoryview) -> dict[str, Any]:
    values = pickle.loads(data)  # our own journal: see the module docstring
    if not isinstance(values, dict):
        raise ValueError(f"not a captured exchange: {type(values).__name__}")
    return values


def _unframe(view: memoryview) -> dict[str, Any]:
    (length,) = _LENGTH.unpack_from(view, len(TAG))
    at = len(TAG) + _LENGTH.size
    values = _loads(view[at:at + length])
    at += length

    def take(size: int) -> bytes:
        nonlocal at
        if at + size > len(view):
            raise ValueError("captured exchange cut short")
        at += size
        return bytes(view[at - size:at])

    request, provider = values.get("request_body"), values.get("provider_response")
    values["request_body"] = None if request is None else take(request)
    values["response_chunks"] = [take(size) for size in values.get("response_chunks", [])]
    values["provider_response"] = None if provider is None else take(provider)
    if at != len(view):
        raise ValueError(f"captured exchange followed by {len(view) - at} stray bytes")
    return values
