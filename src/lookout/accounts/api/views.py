"""Thin views of the token API: validate, call a service, render. Another user's token is not in the queryset,
so it is a 404, never a 403."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lookout.accounts import selectors, services
from lookout.accounts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    PasswordExchangedSerializer,
    PasswordExchangeSerializer,
)
from lookout.accounts.models import ApiToken
from lookout.api.owner import request_owner
from lookout.api.throttling import ScopedThrottle


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                      viewsets.GenericViewSet[ApiToken]):
    """Your API tokens, newest first. The key is shown once, in the response that creates it; DELETE revokes."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return selectors.api_token_list(owner=request_owner(self.request))

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.api_token_create(owner=request_owner(request), **serializer.validated_data)
        return Response(ApiTokenCreatedSerializer(issued.token, context={"key": issued.key}).data,
                        status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        services.api_token_revoke(token=instance)


class PasswordExchangeView(APIView):
    """Exchange a username and password for a new write-scope API token."""

    # No token authentication: the password is the credential (and a read token sent along must not refuse it).
    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "login"

    @extend_schema(request=PasswordExchangeSerializer, responses={200: PasswordExchangedSerializer})
    def post(self, request: Request) -> Response:
        serializer = PasswordExchangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.api_token_exchange(**serializer.validated_data)
        return Response(PasswordExchangedSerializer({"token": issued.key}).data)
