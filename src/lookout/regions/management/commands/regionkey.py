from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lookout.core.regions import region_key


class Command(BaseCommand):
    help = ("Print the key of a region, for its agents' LOOKOUT_REGION_KEY: a monitor's secrets travel to the region "
            "sealed to it. Derived from LOOKOUT_ENCRYPTION_KEY (or SECRET_KEY): changing those changes every key.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("region", help="a name of LOOKOUT_REGIONS other than the home region")

    def handle(self, *args: Any, **options: Any) -> None:
        region = options["region"]
        if region not in settings.LOOKOUT_REGIONS:
            raise CommandError(f"{region!r} is not one of LOOKOUT_REGIONS ({', '.join(settings.LOOKOUT_REGIONS)})")
        if region == settings.LOOKOUT_HOME_REGION:
            raise CommandError(f"{region!r} is the home region: its workers read secrets from the database")
        self.stdout.write(region_key(region))
