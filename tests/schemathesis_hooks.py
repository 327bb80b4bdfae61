"""Schemathesis hooks for ``tests/test_api_contract.py``: steer part of the valid requests to
objects that exist in the server's store, so that order reports and sales are exercised, not
only their 404s. The real order numbers and listing ids come in environment variables.

Loaded by the ``st`` command through ``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``.
"""

from __future__ import annotations

import os
import zlib

import schemathesis

REAL = {
    "number": os.environ.get("CONTRACT_ORDER_NUMBERS", "").split(","),
    "listing": [int(n) for n in os.environ.get("CONTRACT_LISTINGS", "").split(",") if n],
    "event": os.environ.get("CONTRACT_EVENTS", "").split(","),
    "delivery": [int(n) for n in os.environ.get("CONTRACT_DELIVERIES", "").split(",") if n],
}


def _real_instead_of(name: str, generated: object) -> object:
    """Two times in three, a real value in place of the generated one. Chosen from the
    generated value rather than at random, so that Hypothesis can replay and shrink a case."""
    values = REAL.get(name) or []
    digest = zlib.crc32(repr(generated).encode())
    if not values or digest % 3 == 0:
        return generated
    return values[digest % len(values)]


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    # Only valid requests: an invalid one must keep the value that makes it invalid.
    if meta is None or not meta.generation.mode.is_positive:
        return case
    for name, value in list((case.path_parameters or {}).items()):
        case.path_parameters[name] = _real_instead_of(name, value)
    if case.operation.path == "/api/orders" and isinstance(case.body, dict):
        # Every ticket of an event the store has, so that orders are really written.
        events = REAL["event"]
        for order in case.body.get("orders", []):
            for ticket in order.get("tickets", []):
                ticket["event"] = events[zlib.crc32(ticket["event"].encode()) % len(events)]
    return case
