from django.urls import path

from lookout.stats.api import views

urlpatterns = [path("monitors/<int:pk>/stats/", views.MonitorStatsView.as_view(), name="monitor-stats")]
