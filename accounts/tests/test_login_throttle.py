"""Failed logins are throttled by account and by IP, on the dashboard and the admin login,
counted in the real Redis; with Redis down the login still works (fail-open)."""

import logging
import socket
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts import throttle

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"
THROTTLED = "Too many failed log-in attempts. Try again in"


@pytest.fixture(autouse=True)
def clean_counts():
    def clear():
        client = throttle._client()
        for key in client.scan_iter(match=cache.make_key("login-fail:*")):
            client.delete(key)

    clear()
    yield
    clear()


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURES_ACCOUNT = "3/900"
    settings.LOGIN_FAILURES_IP = "5/900"
    return settings


def move_clock(seconds: float) -> None:
    """What waiting `seconds` does to the throttle: its windows are the expiries of its Redis keys
    (the module keeps no clock of its own), so each key's time to live is shortened by that much
    and the ones that run out are gone."""
    client = throttle._client()
    for key in client.scan_iter(match=cache.make_key("login-fail:*")):
        ttl = client.pttl(key)  # milliseconds; -1 no expiry, -2 gone meanwhile
        if ttl < 0:
            continue
        if ttl > seconds * 1000:
            client.pexpire(key, ttl - int(seconds * 1000))
        else:
            client.delete(key)


def login(ip: str, username: str, password: str, url: str = "") -> tuple[Client, str]:
    client = Client(REMOTE_ADDR=ip)
    response = client.post(
        url or reverse("accounts:login"), {"username": username, "password": password}
    )
    errors = response.context["form"].non_field_errors() if response.status_code == 200 else []
    return client, " ".join(errors)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_account_is_throttled_after_its_failures_from_any_ip(user, limits):
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        _client, error = login(ip, "owner@example.com", "wrong-password")
        assert error.startswith("Please enter a correct")
    client, error = login("10.0.0.4", "owner@example.com", PASSWORD)  # right password, too late
    assert error == f"{THROTTLED} 15 minutes." and not logged_in(client)
    # Other accounts are not affected.
    get_user_model().objects.create_user("other@example.com", "other@example.com", PASSWORD)
    client, error = login("10.0.0.4", "other@example.com", PASSWORD)
    assert error == "" and logged_in(client)


def test_ip_is_throttled_across_accounts_and_other_ips_are_not(user, limits):
    for n in range(5):
        _client, error = login("10.0.1.1", f"guess{n}@example.com", "wrong-password")
        assert THROTTLED not in error
    client, error = login("10.0.1.1", "owner@example.com", PASSWORD)
    assert error.startswith(THROTTLED) and not logged_in(client)
    client, error = login("10.0.1.2", "owner@example.com", PASSWORD)
    assert error == "" and logged_in(client)


def test_login_works_again_once_the_window_has_passed(user, limits):
    limits.LOGIN_FAILURES_ACCOUNT = "2/30"
    login("10.0.2.1", "owner@example.com", "wrong-password")
    login("10.0.2.1", "owner@example.com", "wrong-password")
    client, error = login("10.0.2.1", "owner@example.com", PASSWORD)
    assert error.startswith(f"{THROTTLED} ") and error.endswith(" seconds.")
    assert 25 < int(error.removeprefix(THROTTLED).split()[0]) <= 30
    move_clock(20)  # still inside the window, and the wait told shrinks with it
    client, error = login("10.0.2.1", "owner@example.com", PASSWORD)
    assert error.startswith(f"{THROTTLED} ") and not logged_in(client)
    assert int(error.removeprefix(THROTTLED).split()[0]) <= 10
    move_clock(10.5)  # past the window
    client, error = login("10.0.2.1", "owner@example.com", PASSWORD)
    assert error == "" and logged_in(client)


def test_successful_login_clears_the_account_count(user, limits):
    for _round in range(2):
        login("10.0.3.1", "owner@example.com", "wrong-password")
        login("10.0.3.1", "owner@example.com", "wrong-password")
        client, error = login("10.0.3.1", "owner@example.com", PASSWORD)
        assert error == "" and logged_in(client)


def test_unknown_accounts_are_throttled_like_real_ones(limits):
    # Otherwise the throttle message would tell which addresses have an account.
    for _n in range(3):
        login("10.0.4.1", "nobody@example.com", "wrong-password")
    _client, error = login("10.0.4.2", "nobody@example.com", "wrong-password")
    assert error == f"{THROTTLED} 15 minutes."


def test_admin_login_is_throttled(limits):
    get_user_model().objects.create_superuser("boss@example.com", "boss@example.com", PASSWORD)
    url = reverse("admin:login")
    for _n in range(3):
        _client, error = login("10.0.5.1", "boss@example.com", "wrong-password", url)
        assert "correct email" in error or "correct username" in error
    client, error = login("10.0.5.2", "boss@example.com", PASSWORD, url)
    assert error == f"{THROTTLED} 15 minutes."
    assert client.get(reverse("admin:index")).status_code == 302  # still logged out
    # The dashboard login counts the same account.
    _client, error = login("10.0.5.3", "boss@example.com", PASSWORD)
    assert error.startswith(THROTTLED)


def test_client_ip_comes_from_the_proxy_header_when_configured(user, limits):
    limits.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    limits.TRUSTED_PROXIES = ["10.9.9.9"]  # only a trusted proxy's header counts
    for n in range(5):
        client = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 10.0.6.1")
        client.post(
            reverse("accounts:login"), {"username": f"g{n}@example.com", "password": "wrong"}
        )
    client = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="10.0.6.1")
    response = client.post(
        reverse("accounts:login"), {"username": "owner@example.com", "password": PASSWORD}
    )
    assert THROTTLED in response.content.decode()
    client = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="10.0.6.2")
    client.post(reverse("accounts:login"), {"username": "owner@example.com", "password": PASSWORD})
    assert logged_in(client)


def test_a_forwarded_header_from_an_untrusted_peer_does_not_lift_the_throttle(user, limits):
    limits.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    limits.TRUSTED_PROXIES = []
    for n in range(5):
        client = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}")
        client.post(
            reverse("accounts:login"), {"username": f"g{n}@example.com", "password": "wrong"}
        )
    # A new forged address changes nothing: the peer itself is throttled.
    client = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="5.6.7.8")
    response = client.post(
        reverse("accounts:login"), {"username": "owner@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200 and THROTTLED in response.content.decode()
    assert not logged_in(client)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_fails_open(user, limits, caplog):
    limits.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="accounts.throttle")
    for _n in range(4):  # past the limit: nothing is counted
        _client, error = login("10.0.7.1", "owner@example.com", "wrong-password")
        assert error.startswith("Please enter a correct")
    started = time.monotonic()
    client, error = login("10.0.7.1", "owner@example.com", PASSWORD)
    assert error == "" and logged_in(client)
    assert time.monotonic() - started < 5
    assert "Login throttle unavailable (Redis)" in caplog.text
