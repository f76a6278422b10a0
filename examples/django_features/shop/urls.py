"""The example shop's URLs."""

from django.urls import path

from shop import views

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("prices/", views.prices, name="prices"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/<str:item>/", views.add_to_cart, name="add-to-cart"),
    path("visits/", views.visits, name="visits"),
]
