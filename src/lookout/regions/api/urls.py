from django.urls import path

from lookout.regions.api import views

urlpatterns = [path("regions/", views.RegionListView.as_view(), name="region-list")]
