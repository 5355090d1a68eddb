import django_filters
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey, User


class UserFilterSet(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", max_length=200)
    role = django_filters.CharFilter(field_name="roles__name", max_length=64)
    is_active = django_filters.BooleanFilter()
    sort = django_filters.OrderingFilter(fields=(("username", "username"), ("date_joined", "date_joined"),
                                                 ("last_login", "last_login")))

    class Meta:
        model = User
        fields = ["search", "role", "is_active", "sort"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(username__icontains=value) | Q(email__icontains=value)) if value else queryset


class ApiKeyFilterSet(django_filters.FilterSet):
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=100)
    status = django_filters.ChoiceFilter(
        method="filter_status", choices=[("active", "active"), ("revoked", "revoked"), ("expired", "expired")])

    class Meta:
        model = ApiKey
        fields = ["search", "status"]

    def filter_status(self, queryset, name, value):
        now = timezone.now()
        if value == "active":
            return queryset.active(now=now)
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
