"""One error shape everywhere: {"type", "code", "detail", "attr"}.

type is validation_error (400 with a field), client_error (other 4xx), server_error (5xx).
A validation error reports its first field error; `attr` names the field (dotted for nested
fields, with list indexes: `rows.3.price`), or is null for errors about the whole request.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tenants.context import TenantNotSet
from tenants.roles import has_perm


class ServiceError(Exception):
    """A request that the business rules refuse; the API maps it to 400 (or `status`)."""

    status = 400

    def __init__(self, detail: str, *, code: str = "invalid", attr: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.attr = attr


class PermissionDeniedError(ServiceError):
    status = 403


class NotFoundError(ServiceError):
    status = 404

    def __init__(self, detail: str, *, code: str = "not_found", attr: str | None = None):
        super().__init__(detail, code=code, attr=attr)


class ConflictError(ServiceError):
    """Valid, but the current state forbids it (a superseded item, the kill switch): 409."""

    status = 409


def require_perm(membership_role: str | None, perm: str) -> None:
    if not has_perm(membership_role, perm):
        raise PermissionDeniedError(
            f"your role ({membership_role or 'none'}) may not do this (needs {perm})",
            code="permission_denied",
        )


logger = logging.getLogger(__name__)


def error_body(*, type_: str, code: str, detail: str, attr: str | None = None) -> dict:
    return {"type": type_, "code": code, "detail": detail, "attr": attr}


def _first_error(detail, path: list[str]) -> tuple[str | None, exceptions.ErrorDetail | str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = path if key in ("non_field_errors", "__all__") else [*path, str(key)]
            return _first_error(value, sub)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                if value:
                    return _first_error(value, [*path, str(index)])
                continue
            return (".".join(path) or None), value
    return (".".join(path) or None), detail


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response(
            error_body(
                type_="validation_error" if exc.status == 400 else "client_error",
                code=exc.code,
                detail=exc.detail,
                attr=exc.attr,
            ),
            status=exc.status,
        )
    if isinstance(exc, TenantNotSet):
        exc = exceptions.NotFound()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, SuspiciousOperation):  # e.g. a form body of more fields than allowed
        exc = exceptions.ParseError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body(type_="server_error", code="error", detail="A server error occurred."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        attr, detail = _first_error(exc.detail, [])
        response.data = error_body(
            type_="validation_error",
            code=getattr(detail, "code", "invalid"),
            detail=str(detail),
            attr=attr,
        )
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        if isinstance(detail, dict | list):
            _, detail = _first_error(detail, [])
        response.data = error_body(
            type_="client_error" if response.status_code < 500 else "server_error",
            code=getattr(detail, "code", None) or getattr(exc, "default_code", "error"),
            detail=str(detail),
        )
    return response


def json_not_found(request, exception=None):
    return JsonResponse(
        error_body(type_="client_error", code="not_found", detail="Not found."), status=404
    )


def json_server_error(request):
    return JsonResponse(
        error_body(type_="server_error", code="error", detail="A server error occurred."),
        status=500,
    )
