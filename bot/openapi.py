"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``.

Written by hand next to the routes of ``bot/http_api.py``; ``tests/test_http_api.py`` checks
real requests and responses against it, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
from typing import Any

_MONEY = {"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["89.00"]}

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. `invalid_document`"},
        "message": {"type": "string", "description": "what went wrong, in English"},
        "problems": {
            "type": "array",
            "items": {"type": "string"},
            "description": "each problem, naming the field or entry at fault",
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema_name: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
        },
    }


_AUTH_ERRORS = {
    "401": _error("No bearer token, or a wrong one"),
    "403": _error("The API is disabled: no TICKETBOT_API_TOKEN is configured"),
}

_IMPORT_DOCUMENT = {
    "type": "object",
    "description": (
        "Events and orders in the import format of `ticketbot import` (see SPEC.md). The "
        "document is validated completely before anything is written; every problem is "
        "reported at once."
    ),
    "properties": {
        "events": {"type": "array", "items": {"type": "object"}},
        "orders": {"type": "array", "items": {"type": "object"}},
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ticketbot HTTP API",
        "version": "1.0.0",
        "description": (
            "Orders pushed by the ticket shop, order reports, resale outcomes, health and "
            "metrics. Routes under `/api/` (except this document) need "
            "`Authorization: Bearer <TICKETBOT_API_TOKEN>`."
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "ImportDocument": _IMPORT_DOCUMENT,
            "ImportResult": {
                "type": "object",
                "required": ["created", "orders"],
                "properties": {
                    "created": {
                        "type": "object",
                        "required": ["events", "events_updated", "orders", "tickets"],
                        "properties": {
                            name: {"type": "integer", "minimum": 0}
                            for name in ("events", "events_updated", "orders", "tickets")
                        },
                    },
                    "orders": {
                        "type": "array",
                        "description": (
                            "Every order of the document with a buyer deep link. Each call "
                            "issues fresh links; earlier links stay valid."
                        ),
                        "items": {
                            "type": "object",
                            "required": ["number", "link"],
                            "properties": {
                                "number": {"type": "string"},
                                "link": {
                                    "type": "string",
                                    "pattern": r"^https://t\.me/\w+\?start=[A-Za-z0-9_-]+$",
                                },
                            },
                        },
                    },
                },
            },
            "Order": {
                "type": "object",
                "required": ["number", "buyer", "tickets"],
                "properties": {
                    "number": {"type": "string"},
                    "buyer": {
                        "type": "object",
                        "required": ["name", "email", "language"],
                        "properties": {
                            "name": {"type": "string"},
                            "email": {"type": "string"},
                            "language": {"type": "string"},
                        },
                    },
                    "tickets": {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}},
                },
            },
            "Ticket": {
                "type": "object",
                "required": ["ref", "event", "category", "price", "state", "holder", "barcode"],
                "properties": {
                    "ref": {"type": "string"},
                    "event": {"type": "string"},
                    "category": {"type": "string"},
                    "price": _MONEY,
                    "state": {
                        "type": "string",
                        "enum": [
                            "to_assign",
                            "pending",
                            "completed",
                            "on_resale",
                            "sold",
                            "exchanged",
                        ],
                    },
                    "holder": {
                        "description": "the person named on the ticket, if any",
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "required": ["name", "email"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "email": {"type": ["string", "null"]},
                                },
                            },
                        ],
                    },
                    "barcode": {
                        "type": ["string", "null"],
                        "description": "the valid barcode; null once the ticket left the order",
                    },
                },
            },
            "Sale": {
                "type": "object",
                "required": ["listing", "ticket", "price", "currency", "status"],
                "properties": {
                    "listing": {"type": "integer"},
                    "ticket": {"type": "string"},
                    "price": _MONEY,
                    "currency": {"type": "string"},
                    "status": {"const": "sold"},
                },
            },
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "unavailable"]},
                    "checks": {
                        "type": "object",
                        "properties": {
                            "database": {"type": "boolean"},
                            "bot": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
    "paths": {
        "/api/orders": {
            "post": {
                "summary": "Import events and orders (idempotent)",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ImportDocument"}
                        }
                    },
                },
                "responses": {
                    "201": _json("Something was created", "ImportResult"),
                    "200": _json("Nothing new: everything was already imported", "ImportResult"),
                    "400": _error("The body is not JSON"),
                    **_AUTH_ERRORS,
                    "413": _error("The body is larger than the limit (5 MB)"),
                    "415": _error("The body is not declared as application/json"),
                    "422": _error("The document is invalid; nothing was imported"),
                },
            }
        },
        "/api/orders/{number}": {
            "get": {
                "summary": "An order with each ticket's state, holder and current barcode",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "number",
                        "in": "path",
                        "required": True,
                        "description": "the order number, percent-encoded (a slash as %2F)",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json("The order", "Order"),
                    **_AUTH_ERRORS,
                    "404": _error("No such order"),
                },
            }
        },
        "/api/resale/{listing}/sold": {
            "post": {
                "summary": "The resale market sold a listing: complete the sale",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "listing",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"price": _MONEY},
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("The sale is completed", "Sale"),
                    "400": _error("The body is not JSON"),
                    **_AUTH_ERRORS,
                    "404": _error("No such listing"),
                    "409": _error("The listing is no longer live (sold or cancelled)"),
                    "413": _error("The body is larger than the limit"),
                    "415": _error("The body is not declared as application/json"),
                    "422": _error("The price is invalid or outside the event's resale bounds"),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Database reachable and bot running",
                "security": [],
                "responses": {
                    "200": _json("Healthy", "Health"),
                    "503": _json("Not healthy", "Health"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
}

_WEBHOOK = {
    "post": {
        "summary": "Telegram delivers an update (webhook mode only)",
        "security": [],
        "parameters": [
            {
                "name": "X-Telegram-Bot-Api-Secret-Token",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {"description": "The update is queued"},
            "400": {"description": "The body is not a JSON object"},
            "403": {"description": "Missing or wrong secret token"},
        },
    }
}


def openapi_document(webhook_path: str | None = None) -> dict[str, Any]:
    """The document; with the webhook's route when the server receives Telegram's updates."""
    from bot import gate_api  # it imports the API, which imports this module

    document = copy.deepcopy(_DOCUMENT)
    gate_api.describe(document)
    if webhook_path is not None:
        document["paths"][webhook_path] = copy.deepcopy(_WEBHOOK)
    return document
