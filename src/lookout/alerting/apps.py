from django.apps import AppConfig


class AlertingConfig(AppConfig):
    name = "lookout.alerting"
    label = "alerting"

    def ready(self) -> None:
        from lookout.alerting import signals  # noqa: F401  (beat serves lookout_degraded)
