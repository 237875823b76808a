"""Layer 3 of tenant isolation: the one tenant-aware base for every API view.

- The tenant context is set from the request's AuthContext (API key or session) for the whole
  request and reset afterwards.
- Querysets come from the model's scoped manager, so another tenant's object is simply not
  found: "not yours" and "does not exist" both answer 404.
- Roles are checked per action (HasTenantRole); writes go through services.
- Every query parameter of the API takes one value: one given twice is a 400 naming it (rather
  than the last one silently winning).
"""

from __future__ import annotations

from contextlib import ExitStack

from rest_framework import mixins, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from tenants.context import actor_context, require_current_tenant, tenant_context


class TenantScopedMixin:
    """Sets the tenant context from request.auth_context around the whole request."""

    model = None  # the tenant-owned model a viewset serves (read by the isolation tests)

    def initial(self, request, *args, **kwargs):
        # Authentication runs here and sets request.auth_context.
        self.perform_authentication(request)
        context = getattr(request, "auth_context", None)
        if context is not None:
            self._tenant_cm = ExitStack()
            self._tenant_cm.enter_context(tenant_context(context.tenant))
            self._tenant_cm.enter_context(actor_context(context.user_id, context.actor))
        super().initial(request, *args, **kwargs)  # then permissions and throttles
        refuse_repeated_parameters(request)

    def finalize_response(self, request, response, *args, **kwargs):
        cm = getattr(self, "_tenant_cm", None)
        if cm is not None:
            self._tenant_cm = None
            cm.__exit__(None, None, None)
        return super().finalize_response(request, response, *args, **kwargs)

    @property
    def tenant(self):
        return require_current_tenant()

    @property
    def role(self) -> str:
        return self.request.auth_context.role

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation: no tenant, no query
            return self.model.unscoped.none()
        return self.get_tenant_queryset()

    def get_tenant_queryset(self):
        """The rows this view serves; override this, not get_queryset. Always `objects`."""
        return self.model.objects.all()


def refuse_repeated_parameters(request) -> None:
    for name, values in request.query_params.lists():
        if len(values) > 1:
            raise ValidationError({name: [f"give {name} once"]}, code="repeated")


class TenantAPIView(TenantScopedMixin, APIView):
    pass


class TenantViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """Base for tenant-owned resources; add the mixins for the actions a resource offers."""

    input_serializer_class = None
    lookup_value_converter = "int"  # ids are integers: /members/<int:pk>/

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update") and self.input_serializer_class:
            return self.input_serializer_class
        return super().get_serializer_class()


class ReadOnlyTenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    pass
