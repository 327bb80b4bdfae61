"""What every route set of the HTTP API shares: the services it is given, the bearer token
check, reading a JSON body, JSON error answers and the middlewares that send them.

Routes other than the open ones (``/healthz``, ``/metrics``, ``/api/openapi.json`` and the
Mini App under ``/app/``) need the bearer token ``TICKETBOT_API_TOKEN``, compared in constant
time; without a configured token they refuse every call. The gate's routes (named
``gate.…``) check their own tokens (``bot/http/gate_api.py``). Errors are JSON objects naming
what is wrong; a body the schema refuses is answered 422.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from bot.metrics import Metrics
from locales import DEFAULT_LANGUAGE, pick_language, translator
from storage.db.store import Store
from storage.errors import Refusal

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/api/openapi.json"})
MINIAPP_PREFIX = "/app/"
GATE_ROUTE_PREFIX = "gate."  # the names of the routes the API token does not open
_Body = TypeVar("_Body", bound=BaseModel)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiServices:
    """What the API needs from the rest of the bot."""

    store: Store
    api_token: str | None
    bot_username: Callable[[], str]
    metrics: Metrics
    bot_running: Callable[[], bool] = lambda: True
    # The scanners' tokens: they open the gate's routes only (bot/http/gate_api.py).
    gate_tokens: tuple[str, ...] = ()
    # Called after a change that queued chat news or mail, to wake the background worker.
    after_change: Callable[[], None] = lambda: None


SERVICES = web.AppKey("ticketbot_api_services", ApiServices)
BODY_LIMIT = web.AppKey("ticketbot_api_body_limit", int)
DOCUMENT = web.AppKey("ticketbot_api_openapi_document", dict)


class BodyRefused(Exception):
    """A request body we cannot use; carries the error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.reason)
        self.response = response


def problem(
    status: int,
    error: str,
    message: str,
    *,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON error answer: a stable code, a message, and the problems found, if any."""
    body: dict[str, Any] = {"error": error, "message": message}
    if problems is not None:
        body["problems"] = problems
    return web.json_response(body, status=status, headers=headers)


def refusal_message(refusal: Refusal) -> str:
    """A store refusal in English, amounts formatted in their currency."""
    return translator(DEFAULT_LANGUAGE).fill(refusal.message, refusal.params)


# --- middlewares -----------------------------------------------------------------------------


def _allowed(
    request: web.Request, token: str | None, open_paths: frozenset[str]
) -> web.Response | None:
    """None if the request may go on, else the refusal to send."""
    # The Mini App checks Telegram's initData itself (bot/webapp/).
    if request.path in open_paths or (request.path + "/").startswith(MINIAPP_PREFIX):
        return None
    if not token:
        return problem(
            403, "api_disabled", "The API is disabled: no TICKETBOT_API_TOKEN is configured."
        )
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = credentials.strip().encode()
    # compare_digest takes the same time wherever the first difference is.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.encode()):
        return problem(
            401,
            "unauthorized",
            "A valid bearer token is required.",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="ticketbot"'},
        )
    return None


def middlewares(open_paths: frozenset[str]) -> list[Any]:
    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own errors (404, 405…) and crashes, as JSON like ours."""
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            code = re.sub(r"\W+", "_", error.reason.lower()).strip("_")
            return problem(
                error.status,
                code,
                error.reason,
                headers={
                    key: value
                    for key, value in error.headers.items()
                    if key not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)
                },
            )
        except BodyRefused as refused:
            return refused.response
        except Exception as error:
            route = request.match_info.route.resource
            where = route.canonical if route is not None else "?"
            log.error(
                "%s %s failed: %s", request.method, where, type(error).__name__, exc_info=error
            )
            return problem(500, "internal_error", "Something went wrong on our side.")

    @web.middleware
    async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.match_info.route.name or "").startswith(GATE_ROUTE_PREFIX):
            return await handler(request)  # the gate's routes take gate tokens only
        refusal = _allowed(request, request.app[SERVICES].api_token, open_paths)
        return refusal if refusal is not None else await handler(request)

    return [json_errors, bearer_token]


# --- bodies ----------------------------------------------------------------------------------


_REQUIRED = object()


async def json_body(request: web.Request, *, empty: Any = _REQUIRED) -> Any:
    """The request's JSON body (``empty`` if there is none and it is optional); raises
    ``BodyRefused``."""
    raw = await json_text(request, empty=b"" if empty is not _REQUIRED else _REQUIRED)
    if not raw.strip():
        return empty
    try:
        return read_json(raw)
    except JsonRefused as refused:
        raise BodyRefused(refused.response()) from None


async def json_text(request: web.Request, *, empty: Any = _REQUIRED) -> bytes:
    """The request's body as bytes declared JSON, not yet parsed (for a body parsed as a
    stream); ``empty`` if there is none and it is optional. Raises ``BodyRefused`` for a body
    too large, not declared JSON, or empty."""
    limit = request.app[BODY_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(_too_large(limit))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyRefused(_too_large(limit)) from None
    if not raw.strip() and empty is not _REQUIRED:
        return empty
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    if declared and request.content_type != "application/json":
        raise BodyRefused(
            problem(
                415,
                "unsupported_media_type",
                "The body must be JSON (Content-Type: application/json).",
            )
        )
    if not raw.strip():
        raise BodyRefused(
            problem(400, "malformed_json", "The body is empty; a JSON document is expected.")
        )
    return raw


MAX_DEPTH = 32  # arrays and objects within one another; our deepest schema needs 6
MAX_INTEGER = 2**63 - 1  # no field of ours holds more (the store's widest column is BIGINT)


class _NumberRefused(ValueError):
    """A number literal no field can hold (raised from inside ``json.loads``)."""


def _integer(literal: str) -> int:
    # Checked on the text: int() of thousands of digits is slow, and refused past 4,300.
    if len(literal.lstrip("-")) > 19 or abs(int(literal)) > MAX_INTEGER:
        raise _NumberRefused("an integer beyond ±2⁶³−1")
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NumberRefused("a number beyond a double's range")
    return value


def _not_json(constant: str) -> None:
    # Python reads NaN and Infinity, which JSON (RFC 8259) does not have.
    raise json.JSONDecodeError(f"{constant} is not a JSON value", constant, 0)


class JsonRefused(ValueError):
    """A body ``read_json`` will not hand on: its status (400 or 422), a stable code, an
    English message and the problems found."""

    def __init__(self, status: int, error: str, message: str,
                 problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.problems = status, error, message, problems

    def response(self) -> web.Response:
        return problem(self.status, self.error, self.message, problems=self.problems)


def _refused(problem_found: str) -> JsonRefused:
    return JsonRefused(422, "invalid_body", "The body was refused.", [problem_found])


def _too_deep() -> JsonRefused:
    return JsonRefused(400, "too_deep",
                       f"The body nests arrays and objects more than {MAX_DEPTH} deep.")


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_tree(document: Any) -> None:
    """Refuse a parsed document nested deeper than ``MAX_DEPTH`` (400), or holding a string
    that is not Unicode text (a lone surrogate such as "\\ud800", 422: I-JSON, RFC 7493).
    Walked without recursion."""
    pending: list[tuple[Any, tuple[Any, ...]]] = [(document, ())]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if _lone_surrogate(value):
                where = ".".join(map(str, path)) or "the body"
                raise _refused(f"{where}: not Unicode text (a lone surrogate)")
        elif isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                raise _too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            pending.extend((item, (*path, key)) for key, item in items)


def read_json(raw: bytes) -> Any:
    """A JSON document from ``raw``, or ``JsonRefused`` for anything we would not serve whole:
    not JSON or not UTF-8 (400), nested deeper than ``MAX_DEPTH`` (400), a number no field can
    hold or a string that is not text (422). Every face (the API, the gate, the Mini App,
    Telegram's webhook) reads its bodies here, so no input reaches a parser's recursion limit
    nor answers 500."""
    try:
        document = json.loads(raw, parse_int=_integer, parse_float=_float,
                              parse_constant=_not_json)
    except _NumberRefused as refused:
        raise _refused(f"the body holds {refused}") from None
    except json.JSONDecodeError as error:
        where = f"{error.msg} at line {error.lineno}, column {error.colno}"
        raise JsonRefused(400, "malformed_json", f"The body is not valid JSON: {where}.") from None
    except UnicodeDecodeError:
        raise JsonRefused(400, "malformed_json", "The body is not UTF-8 text.") from None
    except RecursionError:  # nested far deeper than MAX_DEPTH
        raise _too_deep() from None
    _check_tree(document)
    return document


def _too_large(limit: int) -> web.Response:
    return problem(413, "too_large", f"The body is larger than the limit of {limit:,} bytes.")


def body_problems(error: ValidationError) -> list[str]:
    """A request model's refusal, one line per problem naming the field at fault."""
    problems = []
    for found in error.errors(include_url=False):
        where = ".".join(str(part) for part in found["loc"])
        if found["type"] == "value_error":
            text = str(found["ctx"]["error"])
        elif found["type"] == "extra_forbidden":
            text = "not a known key"
        elif found["type"] in ("model_type", "model_attributes_type"):
            text = "must be a JSON object"
        else:
            text = found["msg"][:1].lower() + found["msg"][1:]
        problems.append(f"{where}: {text}" if where else f"the body {text}")
    return problems


def parse_body(model: type[_Body], body: Any) -> _Body:
    """The request body as its model; raises ``BodyRefused`` (422) naming each problem."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise BodyRefused(
            problem(422, "invalid_body", "The body was refused.", problems=body_problems(error))
        ) from None


def answer(model: BaseModel, status: int = 200) -> web.Response:
    """A JSON answer built from its documented model."""
    return web.json_response(model.model_dump(mode="json"), status=status)


def accepted_language(request: web.Request, default: str) -> str:
    """The client's most preferred of our languages (``Accept-Language``), else the buyer's."""
    preferences = []
    for position, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, quality = part.partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if weight > 0:
            preferences.append((-weight, position, tag.strip()))
    return pick_language(*(tag for _, _, tag in sorted(preferences)), default)
