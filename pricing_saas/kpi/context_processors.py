from .models import Alert


def open_alerts(request):
    """The number of open alerts, beside the nav's Alerts link on every page of a tenant."""
    if getattr(request, "tenant", None) is None:
        return {}
    return {"open_alerts": Alert.objects.filter(status=Alert.Status.OPEN).count()}
