from django.apps import AppConfig


class RegionsConfig(AppConfig):
    name = "lookout.regions"
    label = "regions"
