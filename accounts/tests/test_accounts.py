import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Membership

pytestmark = pytest.mark.django_db


SIGNUP = {
    "workspace_name": "Sunny Cafe",
    "email": "Ann@Example.com",
    "password": "a-long-pass-phrase-7",
}


def activation_link(message) -> str:
    return re.search(r"http://testserver(/accounts/activate/\S+/)", message.body).group(1)


def test_signup_creates_inactive_user_and_workspace_and_emails_an_activation_link(
    client, mailoutbox
):
    response = client.post(reverse("accounts:signup"), SIGNUP)
    assert response.status_code == 302 and response.url == reverse("accounts:signup_done")
    user = get_user_model().objects.get(email="ann@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.workspace.name == "Sunny Cafe" and membership.role == "owner"
    assert not user.is_active  # not logged in until the address is proven
    assert client.get(reverse("bots:list")).status_code == 302
    assert b"Check your email" in client.get(response.url).content
    assert [m.to for m in mailoutbox] == [["ann@example.com"]]
    assert mailoutbox[0].subject == "Finish creating your AskHandle account"


def test_activation_link_activates_and_logs_in_once(client, mailoutbox):
    client.post(reverse("accounts:signup"), SIGNUP)
    link = activation_link(mailoutbox[0])
    page = client.get(link)  # a mail scanner opening the link activates nothing
    assert page.status_code == 200 and b"Activate and log in" in page.content
    assert not get_user_model().objects.get(email="ann@example.com").is_active
    response = client.post(link, {"password": SIGNUP["password"]})
    assert response.status_code == 302 and response.url == reverse("bots:list")
    assert client.get(reverse("bots:list")).status_code == 200
    assert get_user_model().objects.get(email="ann@example.com").is_active
    client.post(reverse("accounts:logout"))
    assert client.post(link, {"password": SIGNUP["password"]}).status_code == 400  # used up
    assert client.login(username="ann@example.com", password="a-long-pass-phrase-7")


def test_wrong_activation_links_are_refused(client, user):
    assert client.get(reverse("accounts:activate", args=["MQ", "nope-nope"])).status_code == 400
    assert client.get(reverse("accounts:activate", args=["!!", "x"])).status_code == 400


def test_signup_rejects_weak_password(client):
    response = client.post(
        reverse("accounts:signup"),
        {"workspace_name": "X", "email": "new@example.com", "password": "123"},
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["password"] and "email" not in form.errors
    assert not get_user_model().objects.filter(email="new@example.com").exists()


def test_signup_with_a_registered_email_looks_the_same_and_emails_the_owner(
    client, user, mailoutbox
):
    def signup(email):
        response = client.post(
            reverse("accounts:signup"),
            {"workspace_name": "X", "email": email, "password": "a-long-pass-phrase-7"},
            follow=True,
        )
        page = re.sub(  # CSRF tokens are masked anew each time
            rb'"X-CSRFToken": "\w+"|name="csrfmiddlewaretoken" value="\w+"', b"", response.content
        )
        return response.status_code, response.redirect_chain, page

    assert signup("Owner@Example.com") == signup("stranger@example.com")
    assert sorted(m.to[0] for m in mailoutbox) == ["owner@example.com", "stranger@example.com"]
    notice = next(m for m in mailoutbox if m.to == ["owner@example.com"])
    assert notice.subject == "Someone tried to sign up with your email address"
    assert "http://testserver/accounts/login/" in notice.body
    assert "http://testserver/accounts/password-reset/" in notice.body
    assert "/accounts/activate/" not in notice.body
    # The existing account is untouched: same password, still one workspace, still active.
    user.refresh_from_db()
    assert user.is_active and user.check_password("correct-horse-battery-9")
    assert list(user.workspaces.values_list("name", flat=True)) == ["Acme Inc"]


def test_signup_again_before_activating_resends_the_link(client, mailoutbox):
    client.post(reverse("accounts:signup"), SIGNUP)
    client.post(reverse("accounts:signup"), {**SIGNUP, "password": "another-pass-phrase-8"})
    assert len(mailoutbox) == 2 and all(m.to == ["ann@example.com"] for m in mailoutbox)
    link = activation_link(mailoutbox[1])
    assert client.post(link, {"password": "another-pass-phrase-8"}).status_code == 302
    assert get_user_model().objects.filter(email="ann@example.com").count() == 1
    assert Membership.objects.filter(user__email="ann@example.com").count() == 1


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


def test_an_earlier_unactivated_signup_cannot_keep_a_password_on_the_owners_account(
    client, make_user, mailoutbox, django_user_model
):
    """Issue 23, finding 1: an attacker signs up first with someone else's address; the address's
    owner later signs up, activates and accepts an invitation. Only the owner's password works,
    and the workspace is the one the owner named."""
    from django.test import Client

    from bots.services import bot_create

    inviter = make_user("boss@acme.test", "Acme Inc")
    acme_bot = bot_create(workspace=inviter.workspaces.get(), name="Acme Help", slug="acme")
    attacker, carol = Client(), Client()
    attacker_password, carol_password = "attacker-pass-phrase-1", "carols-own-phrase-2"

    attacker.post(
        reverse("accounts:signup"),
        {"workspace_name": "Evil Ltd", "email": "carol@victim.test", "password": attacker_password},
    )
    client.force_login(inviter)
    client.post(reverse("accounts:team"), {"email": "carol@victim.test", "role": "member"})
    invitation = re.search(r"http://testserver(/accounts/invitation/\S+/)", mailoutbox[-1].body)

    response = carol.post(
        reverse("accounts:signup"),
        {
            "workspace_name": "Carol Bakery",
            "email": "carol@victim.test",
            "password": carol_password,
        },
    )
    assert response.status_code == 302 and response.url == reverse("accounts:signup_done")
    attackers_link, carols_link = (
        activation_link(m) for m in mailoutbox if "/accounts/activate/" in m.body
    )
    # voided by carol's sign-up
    assert carol.post(attackers_link, {"password": carol_password}).status_code == 400
    response = carol.post(carols_link, {"password": carol_password})
    assert response.status_code == 302 and response.url == reverse("bots:list")
    response = carol.post(invitation.group(1))
    assert response.status_code == 302 and response.url == reverse("bots:list")
    assert django_user_model.objects.filter(email="carol@victim.test").count() == 1

    # The attacker's password is refused, and they see nothing of Acme.
    response = attacker.post(
        reverse("accounts:login"),
        {"username": "carol@victim.test", "password": attacker_password},
    )
    assert response.status_code == 200 and b"Please enter a correct" in response.content
    response = attacker.get(reverse("bots:detail", args=[acme_bot.pk]))
    assert response.status_code == 302 and reverse("accounts:login") in response.url

    # Carol's own password works, and her workspace has the name she gave.
    fresh = Client()
    response = fresh.post(
        reverse("accounts:login"), {"username": "carol@victim.test", "password": carol_password}
    )
    assert response.status_code == 302 and response.url == reverse("bots:list")
    page = fresh.get(reverse("bots:list"))
    assert page.status_code == 200 and b"Carol Bakery" in page.content
    assert b"Evil Ltd" not in page.content
    carol_user = django_user_model.objects.get(email="carol@victim.test")
    assert set(carol_user.memberships.values_list("workspace__name", "role")) == {
        ("Carol Bakery", "owner"),
        ("Acme Inc", "member"),
    }
    assert fresh.get(reverse("bots:detail", args=[acme_bot.pk])).status_code == 200


def test_signup_again_before_activating_keeps_only_the_latest_password_and_name(
    client, mailoutbox, django_user_model
):
    client.post(reverse("accounts:signup"), SIGNUP)
    client.post(
        reverse("accounts:signup"),
        {**SIGNUP, "password": "another-pass-phrase-8", "workspace_name": "Rainy Bar"},
    )
    first, second = (activation_link(m) for m in mailoutbox)
    page = client.get(first)
    assert page.status_code == 400 and b"This link has expired" in page.content
    page = client.get(second)
    assert page.status_code == 200 and b"Activate and log in" in page.content
    # Before activation no password logs in, neither the first nor the latest.
    assert not client.login(username="ann@example.com", password="another-pass-phrase-8")
    assert client.post(second, {"password": "another-pass-phrase-8"}).status_code == 302
    client.post(reverse("accounts:logout"))
    assert not client.login(username="ann@example.com", password=SIGNUP["password"])
    assert client.login(username="ann@example.com", password="another-pass-phrase-8")
    ann = django_user_model.objects.get(email="ann@example.com")
    assert list(ann.memberships.values_list("workspace__name", "role")) == [("Rainy Bar", "owner")]
    page = client.get(reverse("bots:list"))
    assert page.status_code == 200 and b"Rainy Bar" in page.content


def test_signup_with_an_email_longer_than_a_username_is_a_form_error(client, django_user_model):
    """Issue 23, finding 2: the address becomes the username (150 characters)."""
    email = "a" * 140 + "@example.com"  # 152 characters, a valid address
    response = client.post(reverse("accounts:signup"), {**SIGNUP, "email": email})
    assert response.status_code == 200
    assert "at most 150 characters" in str(response.context["form"].errors["email"])
    assert b"at most 150 characters" in response.content
    assert b"Create account" in response.content
    assert not django_user_model.objects.filter(email=email).exists()


def test_a_strangers_signup_link_cannot_activate_without_the_strangers_password(
    client, mailoutbox, django_user_model
):
    """Issue 23, finding 1, the other way round: carol clicks the activation e-mail that an
    attacker's sign-up with her address sent her. Without the attacker's password the link does
    nothing; her own sign-up then replaces the attacker's password, and only hers works."""
    attacker = Client()
    attacker.post(
        reverse("accounts:signup"),
        {"workspace_name": "Evil Ltd", "email": "carol@victim.test", "password": "evil-pass-1234"},
    )
    link = activation_link(mailoutbox[0])
    response = client.post(link, {"password": "carols-guess-5678"})
    assert response.status_code == 422
    assert b"not the password of this sign-up" in response.content
    assert not django_user_model.objects.get(email="carol@victim.test").is_active

    client.post(
        reverse("accounts:signup"),
        {
            "workspace_name": "Carol Bakery",
            "email": "carol@victim.test",
            "password": "carols-own-99",
        },
    )
    assert (
        client.post(activation_link(mailoutbox[1]), {"password": "carols-own-99"}).status_code
        == 302
    )
    assert not Client().login(username="carol@victim.test", password="evil-pass-1234")
    assert Client().login(username="carol@victim.test", password="carols-own-99")
