"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``, made from the
routes themselves.

Each route of the server is a ``Route``: its method and path, its handler, and the pydantic
models of its request body and of its answers by status. ``bot/http/app.py`` adds the routes
to aiohttp from that list and validates and answers with those models; this module turns the
same list into the document, the models' JSON schemas under ``components/schemas``. Adding a
route is adding one ``Route``. The answers every protected route or every route with a body can
give (401, 403; 400, 413, 415, 422) come from the middleware and body reading that give them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bot.http.api_models import Error
from storage.webhook_messages import MESSAGES

REF = "#/components/schemas/{model}"
MAX_BODY_TEXT = "5 MB"


@dataclass(frozen=True)
class Reply:
    """One documented answer: a description and its JSON body's model, or another body."""

    description: str
    model: type[BaseModel] | None = None
    # A body that is not JSON of a model: {media type: JSON schema}.
    content: dict[str, dict[str, Any]] | None = None
    # OpenAPI links: {name: link object}, e.g. from an order to the sale of its listing.
    links: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Parameter:
    """A path (or header) parameter; ``examples`` are values a client can try as they are."""

    name: str
    schema: dict[str, Any]
    where: str = "path"
    description: str | None = None
    required: bool = True
    examples: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Route:
    """A route of the server and what it accepts and answers. ``path`` is aiohttp's (a
    variable may carry a regular expression: ``{listing:\\d+}``)."""

    method: str
    path: str
    summary: str
    replies: dict[int, Reply]
    handler: Any = None
    request: type[BaseModel] | None = None
    # A request body that may be left out (the request model's defaults apply).
    body_optional: bool = False
    parameters: tuple[Parameter, ...] = ()
    secured: bool = True
    # A request body that is not a model: its JSON schema.
    request_schema: dict[str, Any] | None = None
    # The bearer tokens that open it: the shop's ("bearer") or the gate scanners' ("gate").
    scheme: str = "bearer"
    # aiohttp's name of the route (the middleware tells the gate's routes by it).
    name: str | None = None
    # The operationId, for links to this operation.
    operation_id: str | None = None

    @property
    def openapi_path(self) -> str:
        return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", self.path)

    @property
    def has_body(self) -> bool:
        return self.request is not None or self.request_schema is not None


# What a 403 means, by the tokens a route takes.
_DISABLED = {
    "bearer": "The API is disabled: no TICKETBOT_API_TOKEN is configured",
    "gate": "The gate is disabled: no TICKETBOT_GATE_TOKEN is configured",
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "the shop's TICKETBOT_API_TOKEN"},
    "gate": {"type": "http", "scheme": "bearer",
             "description": "one of the scanners' tokens in TICKETBOT_GATE_TOKEN"},
}


def error(description: str) -> Reply:
    return Reply(description, Error)


def _standard_replies(route: Route) -> dict[int, Reply]:
    """What the middlewares and the body reading answer, besides the route's own replies."""
    replies: dict[int, Reply] = {}
    if route.secured:
        replies[401] = error("No bearer token, or a wrong one")
        replies[403] = error(_DISABLED[route.scheme])
    if route.request is not None:
        replies[400] = error("The body is not JSON")
        replies[413] = error(f"The body is larger than the limit ({MAX_BODY_TEXT})")
        replies[415] = error("The body is not declared as application/json")
        replies[422] = error("The body does not match the schema; nothing was changed")
    return replies


def _schemas(routes: Iterable[Route], messages: Iterable[type[BaseModel]] = (),
             ) -> tuple[dict[tuple[type, str], Any], dict[str, Any]]:
    """The JSON schema of every model the routes and webhooks use, references under
    components/schemas."""
    wanted: list[tuple[type[BaseModel], str]] = [(Error, "serialization")]
    wanted += [(message, "serialization") for message in messages]
    for route in routes:
        if route.request is not None:
            wanted.append((route.request, "validation"))
        for reply in route.replies.values():
            if reply.model is not None:
                wanted.append((reply.model, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, definitions = models_json_schema(unique, ref_template=REF)
    return refs, definitions.get("$defs", {})


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: Route, refs: dict[tuple[type, str], Any]) -> dict[str, Any]:
    replies = {**_standard_replies(route), **route.replies}
    responses: dict[str, Any] = {}
    for status in sorted(replies):
        reply = replies[status]
        answer: dict[str, Any] = {"description": reply.description}
        if reply.model is not None:
            answer["content"] = _content(refs[(reply.model, "serialization")])
        elif reply.content is not None:
            answer["content"] = {
                media: {"schema": schema} for media, schema in reply.content.items()
            }
        if reply.links:
            answer["links"] = reply.links
        responses[str(status)] = answer
    operation: dict[str, Any] = {
        "summary": route.summary,
        "security": [{route.scheme: []}] if route.secured else [],
    }
    if route.operation_id:
        operation["operationId"] = route.operation_id
    if route.request is not None and route.request.__doc__:
        operation["description"] = " ".join(route.request.__doc__.split())
    if route.parameters:
        operation["parameters"] = [_parameter(p) for p in route.parameters]
    if route.has_body:
        schema = (
            refs[(route.request, "validation")]
            if route.request is not None
            else route.request_schema
        )
        operation["requestBody"] = {
            "required": not route.body_optional,
            "content": _content(schema),
        }
    operation["responses"] = responses
    return operation


def _parameter(parameter: Parameter) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": parameter.name,
        "in": parameter.where,
        "required": parameter.required,
        "schema": parameter.schema,
    }
    if parameter.description:
        described["description"] = parameter.description
    if parameter.examples:
        described["examples"] = {
            f"example{n}": {"value": value} for n, value in enumerate(parameter.examples, 1)
        }
    return described


INFO = {
    "title": "Ticketbot HTTP API",
    "version": "1.0.0",
    "description": (
        "Orders pushed by the ticket shop, order reports, resale outcomes, health and metrics. "
        "Routes under `/api/` (except this document) need "
        "`Authorization: Bearer <TICKETBOT_API_TOKEN>`. A body that does not match its schema "
        "is refused with 422; a valid request the store refuses (it conflicts with what the "
        "store holds or with another entry of the same document) with 409. What changes is "
        "also POSTed to the shop's endpoints as signed webhooks (see `webhooks`)."
    ),
}


_WEBHOOK_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "the message's id: the same on every retry (drop what you have seen)"},
    {"name": "webhook-timestamp", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": "when this attempt was signed, in seconds since 1970 (UTC)"},
    {"name": "webhook-signature", "in": "header", "required": True,
     "schema": {"type": "string"},
     "description": "`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` with the secret "
                    "(TICKETBOT_SHOP_WEBHOOK_SECRET); see docs/webhooks.md"},
]


def _webhooks(messages: dict[str, type[BaseModel]],
              refs: dict[tuple[type, str], Any]) -> dict[str, Any]:
    """OpenAPI 3.1's ``webhooks``: each message type the bot POSTs to the shop's endpoints."""
    return {
        type_name: {"post": {
            "summary": type_name,
            "description": message.model_json_schema().get("description", ""),
            "parameters": _WEBHOOK_HEADERS,
            "requestBody": {"required": True,
                            "content": _content(refs[(message, "serialization")])},
            "responses": {
                "2XX": {"description": "Received: the message is not sent again"},
                "410": {"description": "Gone: nothing more is sent to this endpoint"},
                "default": {"description": "Anything else: sent again on the retry schedule "
                                           "(5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)"},
            },
        }}
        for type_name, message in messages.items()
    }


def openapi_document(routes: Iterable[Route],
                     webhooks: dict[str, type[BaseModel]] | None = None) -> dict[str, Any]:
    """The OpenAPI document of these routes, and of the webhooks (by default every message
    type of ``storage/webhook_messages.py``)."""
    routes = list(routes)
    webhooks = MESSAGES if webhooks is None else webhooks
    refs, definitions = _schemas(routes, webhooks.values())
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(route, refs)
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": INFO,
            "webhooks": _webhooks(webhooks, refs),
            "components": {
                "securitySchemes": {
                    scheme: SECURITY_SCHEMES[scheme]
                    for scheme in sorted({route.scheme for route in routes if route.secured})
                },
                "schemas": definitions,
            },
            "paths": paths,
        }
    )
