from rest_framework.throttling import SimpleRateThrottle


class PerKeyRateThrottle(SimpleRateThrottle):
    """One bucket per API key (per user for session clients, per IP otherwise)."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        context = getattr(request, "auth_context", None)
        if context is not None and context.api_key_id is not None:
            ident = f"key:{context.api_key_id}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
