"""values.yaml against values.schema.json: every value is typed, described, and listed in the chart README."""

import json

import jsonschema
import yaml

from support.chart import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def schema_paths(schema: dict, prefix: str = "") -> dict[str, dict]:
    paths = {}
    for key, child in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        paths[path] = child
        paths.update(schema_paths(child, path))
    return paths


def value_paths(values: dict, prefix: str = "", *, leaves_only: bool = False) -> set[str]:
    """Dotted paths of values.yaml; free-form maps (labels, resources, ...) count as one value."""
    described = schema_paths(SCHEMA)
    paths = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        nested = isinstance(value, dict) and value and described.get(path, {}).get("properties")
        if not (nested and leaves_only):
            paths.add(path)
        if nested:
            paths |= value_paths(value, path, leaves_only=leaves_only)
    return paths


def test_values_yaml_is_valid_against_the_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


def test_every_object_in_the_schema_refuses_unknown_keys():
    for path, schema in schema_paths(SCHEMA).items():
        if schema.get("properties"):
            assert schema.get("additionalProperties") is False, path
    assert SCHEMA["additionalProperties"] is False


def test_every_value_is_in_the_schema_with_a_description():
    described = schema_paths(SCHEMA)
    for path in value_paths(VALUES):
        assert path in described, f"{path} is not in values.schema.json"
        assert described[path].get("description"), f"{path} has no description"


def test_every_value_is_in_the_readme_table():
    readme = (CHART / "README.md").read_text()
    missing = [path for path in sorted(value_paths(VALUES, leaves_only=True)) if f"| `{path}` |" not in readme]
    assert not missing, f"chart README lacks rows for {missing}"
