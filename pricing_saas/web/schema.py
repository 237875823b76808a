"""The OpenAPI schema (drf-spectacular): our authentication schemes, and the error responses of
every operation, added once here rather than per view.

`AutoSchema` (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS) documents, in the one error shape of
`errors.py` (`Error`), each error status an operation can answer:

- 400, a malformed or refused request (`attr` names the field or query parameter): operations
  that take a body or query parameters, and every write (services refuse with 400);
- 401, no credentials or an invalid or revoked API key: every authenticated operation;
- 403, the role lacks the permission (or a session's write failed its CSRF check): writes, and
  reads that need more than `view`;
- 404, no such object in this tenant (another tenant's is not found either), or a session's
  `X-Tenant` names no tenant of the user: every authenticated operation;
- 409, the current state forbids it (kill switch, a superseded or finished object): writes;
- 415, a body of another media type than the operation takes: operations with a body;
- 429, the key's request rate is exceeded: every throttled operation.
"""

from __future__ import annotations

from types import SimpleNamespace

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions, serializers

from tenants.roles import ROLE_PERMISSIONS

from .permissions import required_perm

ERROR_TYPES = ["validation_error", "client_error", "server_error"]  # ErrorTypeEnum


class ErrorOut(serializers.Serializer):
    """The one error shape (`pricing_saas.web.errors.error_body`)."""

    type = serializers.ChoiceField(
        choices=ERROR_TYPES,
        help_text="validation_error (400), client_error (other 4xx), server_error (5xx)",
    )
    code = serializers.CharField(help_text="machine-readable, e.g. not_found, permission_denied")
    detail = serializers.CharField(help_text="what went wrong, for people")
    attr = serializers.CharField(
        allow_null=True,
        help_text="the field or query parameter at fault (dotted for nested fields, with list "
        "indexes: `rows.3.price`); null for an error about the whole request",
    )

    class Meta:
        ref_name = "Error"


ERROR_DESCRIPTIONS = {
    "400": "Invalid request: `attr` names the field or query parameter at fault (null: the "
    "whole request).",
    "401": "No credentials, or an invalid or revoked API key.",
    "403": "The caller's role may not do this (for a session write: the CSRF check failed).",
    "404": "Not found: no such object in this tenant (another tenant's is not found either), "
    "or the session's `X-Tenant` header names no tenant of the user.",
    "409": "The current state forbids it (the kill switch is on, the object is superseded or "
    "finished, another job runs).",
    "415": "The body is not of a media type the operation takes (JSON; multipart for a file).",
    "429": "Too many requests for this key; retry after `Retry-After` seconds.",
}
EVERY_ROLE_MAY = frozenset.intersection(*ROLE_PERMISSIONS.values())


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus the error responses that apply to the operation."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for status in self.error_statuses(operation):
            if status not in responses:
                responses[status] = self._error_response(status)
        return operation

    def error_statuses(self, operation: dict) -> list[str]:
        if not self._authenticated():
            return []
        writes = self.method not in permissions.SAFE_METHODS
        has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
        statuses = []
        if writes or has_query or "requestBody" in operation:
            statuses.append("400")
        statuses.append("401")
        if writes or self._required_perm() not in EVERY_ROLE_MAY:
            statuses.append("403")
        statuses.append("404")
        if writes:
            statuses.append("409")
        if "requestBody" in operation:
            statuses.append("415")
        if self.view.get_throttles():
            statuses.append("429")
        return statuses

    def _authenticated(self) -> bool:
        return bool(self.view.get_authenticators()) and not all(
            isinstance(p, permissions.AllowAny) for p in self.view.get_permissions()
        )

    def _required_perm(self) -> str:
        """The permission `HasTenantRole` asks of this operation."""
        return required_perm(SimpleNamespace(method=self.method), self.view)

    def _error_response(self, status: str) -> dict:
        component = self.resolve_serializer(ErrorOut, "response")
        response = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": component.ref}},
        }
        if status == "429":
            response["headers"] = {
                "Retry-After": {
                    "schema": {"type": "integer"},
                    "description": "seconds to wait before the next request",
                }
            }
        return response


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "pricing_saas.web.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>`; the key's role limits what it may do.",
        }


class TenantSessionScheme(OpenApiAuthenticationExtension):
    target_class = "pricing_saas.web.auth.TenantSessionAuthentication"
    name = "SessionAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A portal session; the `X-Tenant` header may name another own tenant.",
        }
