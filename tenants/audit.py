"""The audit log: who changed what, when, with the state before and after.

Services call `record(...)` inside their transaction, so an event exists exactly when its change
does. The actor comes from the context (portal user, API key or "system").
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from .context import get_current_actor, require_current_tenant


def plain(value: Any) -> Any:
    """JSON-safe copy (Decimal, dates, ...) of a before/after state."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record(
    action: str,
    *,
    target: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    summary: str = "",
    before: dict | None = None,
    after: dict | None = None,
):
    from .models import AuditEvent

    if target is not None:
        target_type = target_type or type(target).__name__
        target_id = target_id or getattr(target, "pk", "")
    user_id, label = get_current_actor()
    return AuditEvent.objects.create(
        tenant=require_current_tenant(),
        actor_user_id=user_id,
        actor=label[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        summary=summary[:500],
        before=plain(before),
        after=plain(after),
    )


def snapshot(obj, fields: list[str]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = str(value) if isinstance(value, Decimal) else value
    return out
