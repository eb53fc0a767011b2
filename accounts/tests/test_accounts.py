import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership

pytestmark = pytest.mark.django_db


def test_signup_creates_user_and_owned_workspace_and_logs_in(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "workspace_name": "Sunny Cafe",
            "email": "Ann@Example.com",
            "password": "a-long-pass-phrase-7",
        },
    )
    assert response.status_code == 302 and response.url == reverse("bots:list")
    user = get_user_model().objects.get(email="ann@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.workspace.name == "Sunny Cafe" and membership.role == "owner"
    assert client.get(reverse("bots:list")).status_code == 200


def test_signup_rejects_duplicate_email_and_weak_password(client, user):
    response = client.post(
        reverse("accounts:signup"),
        {"workspace_name": "X", "email": "owner@example.com", "password": "123"},
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "already exists" in form.errors["email"][0]
    assert form.errors["password"]


def test_login_and_logout(client, user):
    response = client.post(
        reverse("accounts:login"),
        {"username": "owner@example.com", "password": "correct-horse-battery-9"},
    )
    assert response.status_code == 302
    assert client.get(reverse("bots:list")).status_code == 200
    client.post(reverse("accounts:logout"))
    response = client.get(reverse("bots:list"))
    assert response.status_code == 302 and reverse("accounts:login") in response.url


def test_password_reset_by_email(client, user, mailoutbox):
    client.post(reverse("accounts:password_reset"), {"email": "owner@example.com"})
    assert len(mailoutbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    response = client.get(link, follow=True)  # redirects to the set-password URL
    assert response.context["validlink"]
    response = client.post(
        response.redirect_chain[-1][0],
        {"new_password1": "brand-new-secret-42", "new_password2": "brand-new-secret-42"},
    )
    assert response.status_code == 302
    assert client.login(username="owner@example.com", password="brand-new-secret-42")
