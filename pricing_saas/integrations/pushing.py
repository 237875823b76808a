"""What every shop publisher decides before it sends anything, whatever the platform.

`plan()` takes the changes handed over, the shop ids of each SKU (`ShopVariant`) and the live
prices just read from the shop, and splits them:
- a SKU the shop connection does not know fails ("sync its products first");
- a variant the shop no longer has fails ("removed; not sent");
- a live price already equal to the new one counts as done: a retry after a half-finished push
  sends nothing twice;
- a live price that is neither the old nor the new one was changed in the shop by a person:
  the change fails and the shop's price is not overwritten (it needs a new approval);
- a platform-specific refusal (`refuse(ref)` answers a reason) fails with that reason;
- the rest are to send.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from decimal import Decimal

from .publishers import ChangeRow, Publisher, PushOutcome, PushResult, TransientPublishError

CENT = Decimal("0.01")


def plan(
    rows: list[ChangeRow],
    refs: dict[str, str],
    live: dict[str, Decimal],
    *,
    shop_url: str,
    refuse: Callable[[str], str] | None = None,
) -> tuple[dict[int, PushResult], list[tuple[ChangeRow, str]]]:
    """(results decided now by change id, [(change, variant ref) to send])."""
    results: dict[int, PushResult] = {}
    to_send: list[tuple[ChangeRow, str]] = []
    for row in rows:
        ref = refs.get(row.sku)
        if ref is None:
            results[row.change_id] = PushResult(
                row.change_id,
                False,
                f"SKU {row.sku} is not a product of {shop_url} (sync its products first)",
            )
            continue
        if ref not in live:
            results[row.change_id] = PushResult(
                row.change_id,
                False,
                "the shop no longer has this product or variant (removed); not sent",
            )
            continue
        price = live[ref]
        if price == row.new_price.quantize(CENT):
            results[row.change_id] = PushResult(row.change_id, True)  # already there: not resent
            continue
        if price != row.old_price.quantize(CENT):
            results[row.change_id] = PushResult(
                row.change_id,
                False,
                f"the shop's price is {price}, not the {row.old_price.quantize(CENT)} this "
                "change was made against (changed in the shop); not overwritten",
            )
            continue
        reason = refuse(ref) if refuse else ""
        if reason:
            results[row.change_id] = PushResult(row.change_id, False, reason)
            continue
        to_send.append((row, ref))
    return results, to_send


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def variants_of(connection, rows: list[ChangeRow]) -> dict[str, tuple[str, str]]:
    """SKU -> (product ref, variant ref) of the changes' SKUs on the connection's shop."""
    from .models import ShopVariant

    return {
        sku: (product_ref, variant_ref)
        for sku, product_ref, variant_ref in ShopVariant.objects.filter(
            connection=connection, sku__in={r.sku for r in rows}
        ).values_list("sku", "product_ref", "variant_ref")
    }


def remember_sending(connection, chunk: list[tuple[ChangeRow, str]]) -> None:
    """Before a call: the prices about to be written, kept as ours (`pushed_price`), so that
    the shop's echo (a webhook, or a sync that reads it while the answer is still on its way or
    was lost) is recognised as our own write, never as a change made in the shop."""
    from .models import ShopVariant

    target = {ref: row.new_price.quantize(CENT) for row, ref in chunk}
    objs = list(ShopVariant.objects.filter(connection=connection, variant_ref__in=target))
    for obj in objs:
        obj.pushed_price = target[obj.variant_ref]
    ShopVariant.objects.bulk_update(objs, ["pushed_price"])


def remember_pushed(connection, written: list[tuple[str, Decimal]]) -> None:
    """The prices the shop confirmed, kept per variant: the webhook or sync that echoes them
    back is then recognised as ours, not as a change made in the shop."""
    from django.utils import timezone

    from .models import ShopVariant

    if not written:
        return
    now, by_ref = timezone.now(), dict(written)
    objs = list(ShopVariant.objects.filter(connection=connection, variant_ref__in=by_ref))
    for obj in objs:
        obj.pushed_price = obj.price = by_ref[obj.variant_ref]
        obj.pushed_at = now
    ShopVariant.objects.bulk_update(objs, ["pushed_price", "price", "pushed_at"])


class ShopPublisher(Publisher):
    """A shop platform's publisher: the tenant's first publishing connection of the platform,
    its client, and the same answers to the same failures whatever the platform (no shop
    connected: every change fails, saying so; a refused credential: the changes fail and the
    connection shows failing; a failure that may pass: `TransientPublishError`, the task
    retries). Subclasses name the platform and implement `client_for` and `send`."""

    remote = True
    platform = ""

    @abstractmethod
    def client_for(self, connection): ...

    @abstractmethod
    def send(self, client, connection, rows: list[ChangeRow]) -> list[PushResult]: ...

    def connection(self):
        from .models import Connection

        return (
            Connection.objects.filter(platform=self.platform, publishes=True)
            .exclude(status=Connection.Status.DISCONNECTED)
            .order_by("pk")
            .first()
        )

    def push(self, rows: list[ChangeRow], *, reference: str) -> PushOutcome:
        from .errors import ConnectorAuthError, ConnectorTransientError
        from .services import mark_failing

        if not rows:
            return PushOutcome(results=[])
        connection = self.connection()
        platform = self.label.split(" (")[0]
        if connection is None or not connection.has_credentials:
            return _fail_all(
                rows,
                f"no connected {platform} shop publishes prices: connect one (Connections) "
                "or choose another publisher",
            )
        currency = (connection.currency or "").upper()
        foreign = [r for r in rows if currency and (r.currency or "").upper() != currency]
        if foreign:  # the shop would read the number in its own currency
            refused = {
                r.change_id: PushResult(
                    r.change_id,
                    False,
                    f"the price is in {r.currency}, the shop sells in {currency}: not sent",
                )
                for r in foreign
            }
            rows = [r for r in rows if r.change_id not in refused]
            outcome = self.push(rows, reference=reference) if rows else PushOutcome(results=[])
            return PushOutcome(results=[*outcome.results, *refused.values()])
        try:
            client = self.client_for(connection)
            try:
                return PushOutcome(results=self.send(client, connection, rows))
            finally:
                client.close()
        except ConnectorAuthError as exc:
            mark_failing(connection=connection, reason=str(exc))
            return _fail_all(rows, str(exc))
        except ConnectorTransientError as exc:
            raise TransientPublishError(f"{platform}: {exc}") from exc


def _fail_all(rows: list[ChangeRow], reason: str) -> PushOutcome:
    return PushOutcome(results=[PushResult(r.change_id, False, reason) for r in rows])
