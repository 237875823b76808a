from .models import Alert, UndercutAlert


def open_alerts(request):
    """The number of open alerts, beside the nav's Alerts link on every page of a tenant."""
    if getattr(request, "tenant", None) is None:
        return {}
    return {
        "open_alerts": Alert.objects.filter(status=Alert.Status.OPEN).count(),
        # beside the nav's Competitors link
        "open_undercuts": UndercutAlert.objects.filter(status=UndercutAlert.Status.OPEN).count(),
    }
