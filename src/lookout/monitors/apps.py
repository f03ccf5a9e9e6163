from django.apps import AppConfig


class MonitorsConfig(AppConfig):
    name = "lookout.monitors"
    label = "monitors"
