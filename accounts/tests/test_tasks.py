"""Celery tasks of accounts, run eagerly as in the test settings."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import tasks
from accounts.tests.fixtures import UserFactory

pytestmark = pytest.mark.django_db


def test_tokens_flush_expired_drops_only_expired_refresh_tokens(settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER
    user = UserFactory()
    live = RefreshToken.for_user(user)
    expired = RefreshToken.for_user(user)
    expired_and_blacklisted = RefreshToken.for_user(user)
    expired_and_blacklisted.blacklist()
    OutstandingToken.objects.filter(jti__in=[expired["jti"], expired_and_blacklisted["jti"]]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert OutstandingToken.objects.count() == 3

    result = tasks.tokens_flush_expired.delay()
    assert result.successful()

    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == [live["jti"]]
    assert not BlacklistedToken.objects.exists()
