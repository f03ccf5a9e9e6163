from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lookout.regions.api.serializers import RegionSerializer
from lookout.regions.selectors import region_list


class RegionListView(APIView):
    """The regions monitors are probed from: their workers seen in the last minute, probes in flight, failure share
    over the last minutes and whether each is suspect."""

    @extend_schema(responses=RegionSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(RegionSerializer(region_list(), many=True).data)
