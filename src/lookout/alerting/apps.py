from django.apps import AppConfig


class AlertingConfig(AppConfig):
    name = "lookout.alerting"
    label = "alerting"
