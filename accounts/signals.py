"""Keeps access-token permission claims honest.

Access tokens carry the user's roles and permissions (seed 000 "JWT Token Structure"), and
authentication trusts them while they are current. Whatever changes a user's roles, or a role's
permissions (services, the admin, a shell), stamps ``permissions_changed_at`` on the users affected,
so tokens issued before then are checked against the database again.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Role, User


def _stamp(user_ids) -> None:
    User.objects.filter(pk__in=list(user_ids)).update(permissions_changed_at=timezone.now())


@receiver(m2m_changed, sender=User.roles.through)
def user_roles_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in {"post_add", "post_remove", "post_clear", "pre_clear"}:
        return
    if not reverse:
        _stamp([instance.pk])
    elif action == "pre_clear":
        _stamp(instance.users.values_list("pk", flat=True))
    elif pk_set:
        _stamp(pk_set)


@receiver(post_save, sender=Role)
def role_saved(sender, instance, created, **kwargs):
    if not created:
        _stamp(instance.users.values_list("pk", flat=True))


@receiver(pre_delete, sender=Role)
def role_deleted(sender, instance, **kwargs):
    instance._affected_users = list(instance.users.values_list("pk", flat=True))


@receiver(post_delete, sender=Role)
def role_gone(sender, instance, **kwargs):
    _stamp(getattr(instance, "_affected_users", []))
