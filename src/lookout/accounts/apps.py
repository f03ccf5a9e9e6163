from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "lookout.accounts"
    label = "accounts"
    verbose_name = "Lookout accounts"
