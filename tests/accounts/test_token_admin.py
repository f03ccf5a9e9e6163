"""The admin lists tokens and revokes them; it never shows a digest and cannot make a token (no key to show)."""

import pytest
from django.test import Client

from lookout.accounts.models import ApiToken
from lookout.accounts.services import api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", password="root-password-1")
    client = Client()
    client.force_login(admin)
    return client


def test_the_admin_lists_tokens_by_prefix_without_their_digest(admin_client, alice):
    issued = api_token_create(owner=alice, name="grafana")

    listing = admin_client.get("/admin/accounts/apitoken/")
    detail = admin_client.get(f"/admin/accounts/apitoken/{issued.token.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert issued.token.prefix in listing.content.decode() and "grafana" in listing.content.decode()
    for page in (listing, detail):
        assert issued.token.digest not in page.content.decode() and issued.key not in page.content.decode()
    assert admin_client.get("/admin/accounts/apitoken/add/").status_code == 403


def test_the_admin_revokes_a_token(admin_client, alice):
    issued = api_token_create(owner=alice, name="leaked")

    response = admin_client.post(f"/admin/accounts/apitoken/{issued.token.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not ApiToken.objects.filter(pk=issued.token.pk).exists()
