from .models import PricingPolicy


def kill_switch(request):
    """The kill switch banner on every portal page of a tenant while it is on."""
    if getattr(request, "tenant", None) is None:
        return {}
    policy = PricingPolicy.objects.filter(kill_switch=True).first()
    return {"kill_switch": policy}
