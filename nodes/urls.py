from django.urls import path

from nodes import views

urlpatterns = [
    path("nodes/", views.node_list, name="node-list"),
    path("nodes/zones/", views.zone_overview, name="node-zones"),
    path("nodes/<uuid:pk>/", views.node_detail, name="node-detail"),
]
