from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "lookout.core"
    label = "core"
    verbose_name = "Lookout core"
