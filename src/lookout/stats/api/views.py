from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lookout.api.owner import request_owner
from lookout.monitors import selectors as monitor_selectors
from lookout.stats.api.serializers import MonitorStatsSerializer, StatsQuerySerializer
from lookout.stats.selectors import monitor_stats


class MonitorStatsView(APIView):
    """Uptime statistics of one of your monitors over a window."""

    @extend_schema(parameters=[StatsQuerySerializer], responses=MonitorStatsSerializer)
    def get(self, request: Request, pk: int) -> Response:
        monitor = monitor_selectors.monitor_get(owner=request_owner(request), monitor_id=pk)
        if monitor is None:
            raise NotFound("No such monitor.")
        query = StatsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        stats = monitor_stats(monitor=monitor, window=query.validated_data["window"],
                              region=query.validated_data.get("region"))
        return Response(MonitorStatsSerializer(stats).data)
