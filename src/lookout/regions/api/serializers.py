from typing import Any

from rest_framework import serializers

from lookout.monitors.models import RegionWorker


class RegionWorkerSerializer(serializers.ModelSerializer[RegionWorker]):
    class Meta:
        model = RegionWorker
        fields = ["worker", "last_seen", "in_flight", "version"]


class RegionSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="A name of LOOKOUT_REGIONS.")
    home = serializers.BooleanField(help_text="The home region: its workers record every region's results.")
    queue = serializers.CharField(help_text="The queue its workers and agents consume: probes or probes.<name>.")
    workers = serializers.IntegerField(help_text="Workers and agents seen in the last minute.")
    workers_seen = RegionWorkerSerializer(many=True, help_text="Those workers, by name.")
    in_flight = serializers.IntegerField(help_text="Probes those workers were running when last seen.")
    window_seconds = serializers.IntegerField(help_text="The window of results, failures and failure_percent "
                                                        "(LOOKOUT_REGION_WINDOW_SECONDS).")
    results = serializers.IntegerField(help_text="Results from this region within the window.")
    failures = serializers.IntegerField(help_text="Failed results among them.")
    failure_percent = serializers.FloatField(allow_null=True, help_text="Their failure share (null: no results).")
    suspect = serializers.BooleanField(help_text="Its failures stand far above the other regions': its votes are "
                                                 "not counted.")
    suspect_since = serializers.DateTimeField(allow_null=True, help_text="When it became suspect (null: it is not).")
