from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password

from tenants.roles import API_KEY_ROLE_CHOICES, Role


class SignupForm(forms.Form):
    company = forms.CharField(max_length=200, label="Company (your shop's name)")
    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, max_length=128)

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            try:
                validate_password(password)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class AcceptInvitationForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    password = forms.CharField(widget=forms.PasswordInput, max_length=128)

    def clean_password(self):
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(choices=API_KEY_ROLE_CHOICES, initial=Role.VIEWER)
