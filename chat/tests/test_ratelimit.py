"""Rate limits in the real Redis: per visitor, per IP, per bot and per API key, answered with 429."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from chat import ratelimit
from chat.apikeys import api_key_create
from chat.models import Message

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def ask(client, slug, accept="application/json", **extra):
    return client.post(
        reverse("chat:ask", args=[slug]), {"message": "Hello?"}, HTTP_ACCEPT=accept, **extra
    )


def test_counter_lives_in_redis_and_expires_with_its_window():
    limit = ratelimit.Limit.parse("2/30")
    ratelimit.hit("probe", "k", limit)
    ratelimit.hit("probe", "k", limit)
    with pytest.raises(ratelimit.RateLimited) as exc:
        ratelimit.hit("probe", "k", limit)
    assert 1 <= exc.value.retry_after <= 30
    raw = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = raw.keys(cache.make_key("rl:probe:k:*"))
    assert len(keys) == 1 and int(raw.get(keys[0])) == 3
    assert 0 < raw.ttl(keys[0]) <= 31
    ratelimit.hit("probe", "other-key", limit)  # another key has its own count


def test_visitor_limit_answers_429_with_retry_after(client, bot, settings):
    settings.RATE_LIMIT_VISITOR = "2/60"
    assert ask(client, bot.slug).status_code == 200
    assert ask(client, bot.slug).status_code == 200
    response = ask(client, bot.slug)
    assert response.status_code == 429
    retry = int(response["Retry-After"])
    assert 1 <= retry <= 60
    assert (
        response.json()["error"]
        == f"You're sending messages quickly. Please wait {retry} seconds and try again."
    )
    assert Message.objects.filter(role="user").count() == 2  # the refused message is not recorded


def test_rate_limit_message_is_shown_in_the_page_without_javascript(client, bot, settings):
    settings.RATE_LIMIT_VISITOR = "1/60"
    ask(client, bot.slug, accept="text/html")
    response = ask(client, bot.slug, accept="text/html")
    assert response.status_code == 429 and response["Retry-After"]
    html = response.content.decode()
    assert (
        "You&#x27;re sending messages quickly" in html or "You're sending messages quickly" in html
    )
    assert 'role="alert"' in html and "Hello?" in html  # the draft is kept


def test_streaming_request_gets_429_before_any_stream(client, bot, settings):
    settings.RATE_LIMIT_VISITOR = "1/60"
    ask(client, bot.slug)
    response = ask(client, bot.slug, accept="text/event-stream")
    assert response.status_code == 429 and not response.streaming
    assert "Retry-After" in response.headers


def test_per_ip_limit_spans_conversations(bot, settings):
    settings.RATE_LIMIT_IP = "2/60"
    for _ in range(2):
        assert (
            ask(Client(), bot.slug, REMOTE_ADDR="10.0.0.1").status_code == 200
        )  # new visitor each time
    assert ask(Client(), bot.slug, REMOTE_ADDR="10.0.0.1").status_code == 429
    assert ask(Client(), bot.slug, REMOTE_ADDR="10.0.0.2").status_code == 200


def test_per_bot_limit_counts_every_visitor(bot, other_bot, settings):
    settings.RATE_LIMIT_BOT = "3/60"
    for i in range(3):
        assert ask(Client(), bot.slug, REMOTE_ADDR=f"10.1.0.{i}").status_code == 200
    response = ask(Client(), bot.slug, REMOTE_ADDR="10.1.0.99")
    assert response.status_code == 429
    assert "getting a lot of questions" in response.json()["error"]
    assert ask(Client(), other_bot.slug, REMOTE_ADDR="10.1.0.99").status_code == 200


def test_handoff_is_rate_limited_too(client, bot, settings):
    settings.RATE_LIMIT_VISITOR = "1/60"
    url = reverse("chat:handoff", args=[bot.slug])
    client.post(url, {"email": "a@b.test"}, HTTP_ACCEPT="application/json")
    response = client.post(url, {"email": "a@b.test"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 429 and response["Retry-After"]


def test_limits_can_be_lifted(client, bot, settings):
    settings.RATE_LIMIT_VISITOR = "1/60"
    settings.RATE_LIMITS_ENABLED = False
    assert all(ask(client, bot.slug).status_code == 200 for _ in range(3))


def test_api_key_limit_uses_openai_error_shape(client, bot, settings):
    settings.RATE_LIMIT_API_KEY = "1/60"
    _, raw = api_key_create(bot=bot, name="k")
    body = json.dumps({"model": bot.slug, "messages": [{"role": "user", "content": "Hi"}]})
    kwargs = {"content_type": "application/json", "HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.post("/v1/chat/completions", body, **kwargs).status_code == 200
    response = client.post("/v1/chat/completions", body, **kwargs)
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert set(error) == {"message", "type", "param", "code"}


def test_failed_api_keys_from_one_address_get_429_before_any_key_is_checked(client, bot, settings):
    # /v1 had no limit on failed keys: guessing was as fast as the server (issue 23, 5d).
    settings.RATE_LIMIT_API_KEY_FAILURES = "3/60"
    _, raw = api_key_create(bot=bot, name="k")
    body = json.dumps({"model": bot.slug, "messages": [{"role": "user", "content": "Hi"}]})

    def call(http, key):
        return http.post(
            "/v1/chat/completions",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )

    for guess in ("ah_wrong1", "ah_wrong2", "not-even-a-key"):  # wrong keys: guesses
        response = call(client, guess)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    blocked = call(client, raw)  # the right key, from an address that has guessed enough
    assert blocked.status_code == 429 and 1 <= int(blocked["Retry-After"]) <= 60
    error = blocked.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert "Too many requests with an invalid API key from your address" in error["message"]
    models = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert models.status_code == 429
    other = call(Client(REMOTE_ADDR="203.0.113.7"), raw)  # another address is not affected
    assert other.status_code == 200 and other.json()["object"] == "chat.completion"


def test_forwarded_header_counts_only_from_a_trusted_proxy(rf, settings):
    # The header alone used to name the client: after a 429, 30 asks each with another
    # X-Forwarded-For all got 200 (issue 23, finding 4).
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.TRUSTED_PROXIES = []
    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8")
    assert ratelimit.client_ip(request) == "127.0.0.1"

    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    assert ratelimit.client_ip(request) == "5.6.7.8"  # what our proxy saw; 1.2.3.4 is hearsay
    chain = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4, 10.0.0.7")
    assert ratelimit.client_ip(chain) == "1.2.3.4"  # the first hop that is not one of ours
    direct = rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert ratelimit.client_ip(direct) == "203.0.113.9"  # not a proxy of ours: header ignored
    mapped = rf.get("/", REMOTE_ADDR="::ffff:10.1.2.3", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert ratelimit.client_ip(mapped) == "1.2.3.4"


@pytest.mark.parametrize(
    "env, header",
    [
        ({"ASKHANDLE_CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR"}, ""),
        ({"ASKHANDLE_TRUSTED_PROXIES": "10.0.0.0/8"}, "HTTP_X_FORWARDED_FOR"),
        (
            {"ASKHANDLE_TRUSTED_PROXIES": "10.0.0.1", "ASKHANDLE_CLIENT_IP_HEADER": "X-Real-IP"},
            "HTTP_X_REAL_IP",
        ),
    ],
)
def test_the_client_ip_header_is_only_read_with_trusted_proxies_configured(env, header):
    # Without trusted proxies the header stays blank, for the login throttle too.
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += "print(repr((s.CLIENT_IP_HEADER, s.TRUSTED_PROXIES)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "askhandle.settings", **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    trusted = [p for p in env.get("ASKHANDLE_TRUSTED_PROXIES", "").split(",") if p]
    assert result.stdout.strip() == repr((header, trusted))


@pytest.mark.django_db(transaction=True)
def test_a_spoofed_forwarded_for_through_uvicorn_does_not_lift_the_ip_limit(bot, tmp_path):
    # uvicorn took X-Forwarded-For from any 127.0.0.1 peer as the client (its proxy-headers
    # default): every launcher now passes --no-proxy-headers, as devtools.start_uvicorn does.
    from askhandle.devtools import start_uvicorn, stop_process
    from conftest import child_env

    env = {
        **child_env(),
        "ASKHANDLE_RATE_LIMIT_IP": "3/60",
        "ASKHANDLE_RATE_LIMIT_VISITOR": "50/60",
    }
    proc, base = start_uvicorn(env, tmp_path / "uvicorn.log")
    replies = []
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            http.get(f"/c/{bot.slug}/")
            for i in range(6):
                replies.append(
                    http.post(
                        f"/c/{bot.slug}/handoff/",
                        data={"email": "not-an-email"},
                        headers={
                            "X-CSRFToken": http.cookies["csrftoken"],
                            "X-Forwarded-For": f"198.51.100.{i}",
                            "Accept": "application/json",
                        },
                    )
                )
    finally:
        stop_process(proc)
    assert [r.status_code for r in replies] == [400, 400, 400, 429, 429, 429]
    assert "valid email" in replies[0].json()["error"]
    assert "You're sending messages quickly" in replies[-1].json()["error"]
    assert 1 <= int(replies[-1].headers["Retry-After"]) <= 60


def test_every_web_launcher_leaves_forwarded_headers_to_django():
    for name in ("Dockerfile", "docker-compose.yml", "scripts/run.py", "askhandle/devtools.py"):
        assert "--no-proxy-headers" in (ROOT / name).read_text(), name
