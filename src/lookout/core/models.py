from django.db import models


class RateCounter(models.Model):
    """Requests counted under one throttle key (`user:42`, `login:203.0.113.7`, `push:<token>`) in a fixed window.

    In the database so every API process and replica counts into the same row; one upsert per request
    (lookout.core.rate_counters). Unlogged on PostgreSQL: a crash may reset counters, never lose real data.
    """

    KEY_MAX_LENGTH = 255
    key = models.CharField(max_length=KEY_MAX_LENGTH, primary_key=True)
    window_end = models.BigIntegerField(help_text="Unix time the current window ends at.")
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        # Created by monitors' migration 0005, before the counters had an app of their own.
        db_table = "monitors_ratecounter"

    def __str__(self) -> str:
        return f"{self.key}: {self.hits} until {self.window_end}"
