"""URLs of the test project."""

from django.urls import path

from djproject import views

urlpatterns = [
    path("visits/", views.visits),
    path("profile/<int:user_id>/", views.profile),
    path("page/", views.page),
    path("dashboard/<int:user_id>/", views.dashboard),
    path("dashboard/<int:user_id>/changed/", views.dashboard_changed),
    path("adashboard/<int:user_id>/", views.adashboard),
]
