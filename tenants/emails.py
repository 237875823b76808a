"""E-mails the tenants app sends (console backend locally, EMAIL_URL in production)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse


def invitation_url(token: str) -> str:
    base = getattr(settings, "PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")
    return base + reverse("accept_invitation", args=[token])


def send_invitation(issued) -> None:
    invitation = issued.invitation
    send_mail(
        subject=f"You are invited to {invitation.tenant.name} on Pricing",
        message=(
            f"You have been invited to join {invitation.tenant.name} as {invitation.role}.\n\n"
            f"Accept the invitation: {invitation_url(issued.token)}\n\n"
            f"The link expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invitation.email],
    )
