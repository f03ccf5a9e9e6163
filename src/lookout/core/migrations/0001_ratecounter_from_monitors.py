"""RateCounter moves from monitors to core: the table stays (monitors_ratecounter), only Django's state moves."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("monitors", "0005_ratecounter")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name="RateCounter",
                fields=[
                    ("key", models.CharField(max_length=255, primary_key=True, serialize=False)),
                    ("window_end", models.BigIntegerField(help_text="Unix time the current window ends at.")),
                    ("hits", models.PositiveIntegerField(default=0)),
                ],
                options={"db_table": "monitors_ratecounter"},
            ),
        ]),
    ]
