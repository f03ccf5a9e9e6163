"""The probe type registry: one module per type, and what is derived from the list."""

import pytest

from lookout.probes.engine import PROBE_TYPES, ProbeSpec, spec_fields, url_validate
from lookout.probes.engine.types import COMMON_SPEC_FIELDS, TYPE_BY_SCHEME, TYPE_MODULES


def test_every_type_module_provides_the_same_names():
    for name, module in TYPE_MODULES.items():
        assert module.TYPE == name
        assert module.SCHEMES and callable(module.url_rule) and callable(module.target_hosts)
        assert callable(module.probe)


def test_every_spec_field_a_type_lists_is_a_probe_spec_field():
    known = set(ProbeSpec.__dataclass_fields__)

    for probe_type in PROBE_TYPES:
        assert set(spec_fields(probe_type)) <= known, probe_type
        assert spec_fields(probe_type)[:len(COMMON_SPEC_FIELDS)] == COMMON_SPEC_FIELDS


def test_each_scheme_belongs_to_one_type():
    assert {scheme: module.TYPE for scheme, module in TYPE_BY_SCHEME.items()} == {
        "http": "http", "https": "http", "tcp": "tcp", "dns": "dns"}


@pytest.mark.parametrize(("probe_type", "url"), [
    ("http", "https://example.com/health?x=1"),
    ("http", "http://myservice:8080/"),  # a single label: a Kubernetes service name
    ("http", "http://[2001:db8::1]:8443/"),
    ("http", "https://bücher.example/"),
    ("tcp", "tcp://db.internal:5432"),
    ("dns", "dns://9.9.9.9:53/example.com"),
    ("dns", "dns:///example.com"),
])
def test_a_well_formed_target_passes_its_types_url_rule(probe_type, url):
    url_validate(probe_type, url)


@pytest.mark.parametrize(("probe_type", "url", "message"), [
    ("http", "ftp://example.com/", "Enter a valid http:// or https:// URL."),
    ("http", "http://exa mple.com/", "Enter a valid http:// or https:// URL."),
    ("http", "http://example.com:99999/", "Enter a valid http:// or https:// URL."),
    ("http", "http://under_score.example/", "is not a valid host name"),
    ("http", "http://-leading.example/", "is not a valid host name"),
    ("tcp", "tcp://db.internal", "tcp://HOST:PORT"),
    ("tcp", "tcp://db.internal:5432/path", "tcp://HOST:PORT"),
    ("dns", "dns://9.9.9.9/", "dns://RESOLVER/NAME"),
    ("smtp", "smtp://mail.example", "Unknown probe type"),
])
def test_a_malformed_target_is_refused_with_a_message_for_the_user(probe_type, url, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace(".", r"\.").replace("(", r"\(")):
        url_validate(probe_type, url)
