"""The operators' routes of the shop's outbound webhooks: the deliveries (those that failed,
say) and replaying one. They open with the shop's API token, like the shop's routes. What is
sent and how is in ``bot/webhooks.py`` and ``storage/webhook_outbox.py``."""

from __future__ import annotations

from aiohttp import web

from bot.http.api_models import WebhookDelivery, WebhookDeliveryPage
from bot.http.kernel import SERVICES, answer, problem
from bot.http.openapi import Parameter, Reply, Route, error
from bot.http.shop_api import MAX_ID, NUMBER
from storage import webhook_outbox
from storage.models import DeliveryState

DELIVERY_STATES = tuple(state.value for state in DeliveryState)


def _delivery_answer(view: webhook_outbox.DeliveryView) -> WebhookDelivery:
    return WebhookDelivery(
        id=view.id, webhook_id=view.webhook_id, type=view.type, endpoint=view.endpoint,
        order=view.order_number, status=view.state, attempts=view.attempts,
        last_status=view.last_status, last_error=view.last_error, created_at=view.created_at,
        next_attempt_at=view.next_attempt_at, finished_at=view.finished_at)


async def get_webhook_deliveries(request: web.Request) -> web.Response:
    """The webhook deliveries (of one status), a page at a time, oldest first."""
    status, after = request.query.get("status"), request.query.get("after", "0")
    limit = request.query.get("limit")
    if status is not None and status not in DELIVERY_STATES:
        return problem(400, "invalid_parameter",
                       f"status must be one of {', '.join(DELIVERY_STATES)}.")
    if not (NUMBER.fullmatch(after) and int(after) <= MAX_ID):
        return problem(400, "invalid_parameter", f"after must be a whole number up to {MAX_ID}.")
    if limit is not None and not (NUMBER.fullmatch(limit)
                                  and 1 <= int(limit) <= webhook_outbox.MAX_PAGE):
        return problem(400, "invalid_parameter",
                       f"limit must be a whole number from 1 to {webhook_outbox.MAX_PAGE}.")
    size = int(limit) if limit is not None else 100
    found = await webhook_outbox.deliveries(
        request.app[SERVICES].store, DeliveryState(status) if status else None,
        after=int(after), limit=size + 1)
    return answer(WebhookDeliveryPage(
        deliveries=[_delivery_answer(view) for view in found[:size]],
        next=found[size - 1].id if len(found) > size else None))


async def post_webhook_retry(request: web.Request) -> web.Response:
    """Send a failed or stopped delivery again (its endpoint, if stopped, starts again)."""
    api = request.app[SERVICES]
    delivery_id = int(request.match_info["delivery"])
    if not 1 <= delivery_id <= MAX_ID:
        return problem(404, "delivery_not_found", f"There is no delivery {delivery_id}.")
    try:
        view = await webhook_outbox.retry_delivery(api.store, delivery_id)
    except webhook_outbox.DeliveryNotFound:
        return problem(404, "delivery_not_found", f"There is no delivery {delivery_id}.")
    except webhook_outbox.DeliveryNotFinished:
        return problem(409, "delivery_not_finished",
                       "Only a failed or stopped delivery can be retried; this one is "
                       "pending or delivered.")
    api.after_change()
    return answer(_delivery_answer(view))



ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/webhook-deliveries",
        "The shop's webhook deliveries, e.g. those that failed (`?status=failed`), paged",
        handler=get_webhook_deliveries,
        operation_id="listWebhookDeliveries",
        parameters=(
            Parameter("status", {"type": "string", "enum": list(DELIVERY_STATES)},
                      where="query", required=False),
            Parameter("after", {"type": "integer", "minimum": 0, "maximum": MAX_ID,
                                "default": 0}, where="query", required=False,
                      description="the `next` of the previous page"),
            Parameter("limit", {"type": "integer", "minimum": 1,
                                "maximum": webhook_outbox.MAX_PAGE, "default": 100},
                      where="query", required=False),
        ),
        replies={
            200: Reply("A page of deliveries", WebhookDeliveryPage, links={
                "RetryFirst": {"operationId": "retryWebhookDelivery",
                               "parameters": {"delivery": "$response.body#/deliveries/0/id"}},
            }),
            400: error("An unknown status, or `after`/`limit` out of range"),
        },
    ),
    Route(
        "POST",
        r"/api/webhook-deliveries/{delivery:[0-9]+}/retry",
        "Send a failed or stopped webhook delivery again, from the start of the schedule",
        handler=post_webhook_retry,
        operation_id="retryWebhookDelivery",
        parameters=(Parameter("delivery", {"type": "integer", "minimum": 1,
                                           "maximum": MAX_ID}, examples=(1,)),),
        replies={
            200: Reply("The delivery, pending again", WebhookDelivery),
            404: error("No such delivery"),
            409: error("The delivery is pending or delivered: nothing to retry"),
        },
    ),
]
