from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.PollenLoginView.as_view(), name="login"),
    path("logout/", views.PollenLogoutView.as_view(), name="logout"),
    path("register/", views.register, name="register"),
]
