"""Production settings come from the environment, `check --deploy` is clean with them, and the
development defaults stay as they were. Settings are read at import, so each case runs in a
fresh interpreter with exactly the environment given."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "support.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://support.example.com",
    "ASKHANDLE_SITE_URL": "https://support.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
}
SHOWN = [
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
]


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    # Only PATH and HOME from this process: no DJANGO_* or test variables leak in.
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def settings_under(env: dict) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {SHOWN!r}}}))"
    )
    result = run(["-c", code], {"DJANGO_SETTINGS_MODULE": "askhandle.settings", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_is_clean_with_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_collectstatic_runs_with_production_settings(tmp_path):
    """What the Dockerfile runs: the manifest storage fails on a file that names one it cannot
    find (a vendored script's source map comment broke the image build once)."""
    env = {**PRODUCTION, "DJANGO_STATIC_ROOT": str(tmp_path)}
    result = run(["manage.py", "collectstatic", "--no-input", "-v", "0"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    assert "vendor/chartjs/chart.umd.min.js" in manifest and "js/htmx.min.js" in manifest


def test_check_deploy_flags_a_plain_http_production_run():
    # The check above is a real one: without HTTPS it reports what is missing.
    env = {**PRODUCTION, "ASKHANDLE_SITE_URL": "http://localhost:8000"}
    del env["DJANGO_SECURE_PROXY_SSL_HEADER"]
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # HSTS
    assert "security.W008" in result.stderr + result.stdout  # SSL redirect


def test_production_https_defaults():
    assert settings_under(PRODUCTION) == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_each_https_setting_comes_from_its_own_variable():
    shown = settings_under(
        {
            **PRODUCTION,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_SECURE_HSTS_SECONDS": "3600",
            "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "0",
            "DJANGO_SECURE_HSTS_PRELOAD": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Ssl=on",
        }
    )
    assert shown == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_SSL", "on"],
    }


def test_empty_variables_mean_the_defaults():
    # `set -a; source .env` of a copied .env.example exports them empty.
    empty = {name: "" for name in ("DJANGO_SECURE_COOKIES", "DJANGO_SECURE_SSL_REDIRECT",
                                    "DJANGO_SECURE_HSTS_SECONDS", "DJANGO_SECURE_HSTS_PRELOAD")}  # fmt: skip
    assert settings_under({**PRODUCTION, **empty}) == settings_under(PRODUCTION)


def test_plain_http_production_run_does_not_redirect_or_send_hsts():
    # `docker compose up` on http://localhost:8000: a redirect would go to a port without TLS.
    env = {k: v for k, v in PRODUCTION.items() if not k.startswith(("ASKHANDLE", "DJANGO_SECURE"))}
    shown = settings_under(env)
    assert shown["SECURE_SSL_REDIRECT"] is False and shown["SECURE_HSTS_SECONDS"] == 0
    assert shown["SESSION_COOKIE_SECURE"] is True and shown["SECURE_PROXY_SSL_HEADER"] is None


def test_development_defaults_are_unchanged():
    assert settings_under({}) == {
        "DEBUG": True,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,  # inert while HSTS_SECONDS is 0
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }


@pytest.mark.django_db
def test_https_redirect_and_hsts_behind_a_tls_proxy(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    url = reverse("accounts:login")
    response = client.get(url)
    assert response.status_code == 301 and response["Location"] == f"https://testserver{url}"
    response = client.get(url, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_env_example_lists_every_setting_with_a_comment():

    source = (ROOT / "askhandle" / "settings.py").read_text()
    read = set(
        re.findall(r'(?:os\.environ\.get|env_bool|env_list|env_proxy_header)\(\s*"(\w+)"', source)
    )
    lines = [
        line
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    listed = {line.split("=", 1)[0] for line in lines}
    assert len(read) > 60 and read - listed == set()
    assert [line for line in lines if " # " not in line] == []
