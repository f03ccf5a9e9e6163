from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "lookout.stats"
    label = "stats"
