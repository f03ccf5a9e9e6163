from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "lookout.observability"
    label = "observability"
