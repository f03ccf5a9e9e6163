from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "lookout.scheduling"
    label = "scheduling"
