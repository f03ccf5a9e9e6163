"""RateCounter now belongs to lookout.core (core/0001 takes it over): the table is kept, only the state moves."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("monitors", "0005_ratecounter"), ("core", "0001_ratecounter_from_monitors")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="RateCounter")]),
    ]
