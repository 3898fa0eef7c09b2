"""Delivery target definitions, read from settings and validated per target.

Operators declare targets once, with their credentials, in
``DAMFLEET_DISTRIBUTION_TARGETS_FILE`` (a JSON file) and/or
``DAMFLEET_DISTRIBUTION_TARGETS_JSON`` (inline; wins over the file name by name)::

    {
      "cdn":     {"type": "s3", "bucket": "media-origin", "prefix": "assets",
                  "endpoint_url": "https://rgw.internal", "access_key_id": "...",
                  "secret_access_key_env": "CDN_SECRET", "cache_control": "public, max-age=86400",
                  "tags": {"source": "damfleet"}},
      "partner": {"type": "http", "url": "https://drop.partner.example/in/{asset_id}/{filename}",
                  "method": "PUT", "bearer_token_env": "PARTNER_TOKEN"},
      "notify":  {"type": "webhook", "url": "https://hooks.example/damfleet", "secret_env": "HOOK_SECRET"},
      "nas":     {"type": "local", "path": "/mnt/deliveries"}
    }

Profiles and requests name targets; they never carry credentials, so secrets stay out of
Temporal's history. Any secret field may instead be given as ``<field>_env``: the name of
an environment variable holding it (how Kubernetes Secrets are usually mounted).

A target named ``local`` exists without configuration: it copies into
``<state_dir>/delivered/<asset_id>/`` so the embedded default delivers somewhere.

A broken definition fails only deliveries to that target, each with a
:class:`~damfleet.errors.ConfigurationError` naming it; other targets keep working.

Each type's fields, defaults and checks live in its own module's pydantic model (listed
in :mod:`damfleet.delivery.targets`); a definition is validated as one pydantic
discriminated union on ``type`` (:data:`TargetDefinition`), ``*_env`` secrets are resolved
by :class:`~damfleet.delivery.base.TargetConfig` itself, and this module turns validation
errors into one clear sentence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Discriminator, SecretStr, Tag, TypeAdapter, ValidationError

from damfleet.delivery.base import TargetConfig
from damfleet.delivery.local import LocalTargetConfig
from damfleet.delivery.targets import TARGET_TYPES
from damfleet.errors import ConfigurationError
from damfleet.settings import Settings

__all__ = [
    "BUILTIN_LOCAL_TARGET",
    "TargetDefinition",
    "TargetRegistry",
    "parse_target",
]

BUILTIN_LOCAL_TARGET = "local"

#: What each JSON type must be, in the words a validation error uses.
_EXPECTED = {str: "a string", SecretStr: "a string", int: "a non-negative integer", float: "a non-negative number", bool: "true or false"}


def _type_of(raw: Any) -> Any:
    return raw.get("type") if isinstance(raw, dict) else getattr(raw, "type", None)


#: One target definition: a pydantic discriminated union on ``type`` over every config model
#: in :data:`~damfleet.delivery.targets.TARGET_TYPES` (a callable discriminator, so the models
#: keep ``type: str`` and a new type is one line in that table).
TargetDefinition = TypeAdapter(
    Annotated[
        Union[tuple(Annotated[t.config, Tag(name)] for name, t in TARGET_TYPES.items())],  # noqa: UP007
        Discriminator(_type_of, custom_error_type="unknown_target_type", custom_error_message="unknown target type"),
    ]
)


def _explain(name: str, kind: Any, exc: ValidationError) -> ConfigurationError:
    """One sentence naming the target and every field that is wrong."""
    target_type = TARGET_TYPES.get(kind) if isinstance(kind, str) else None
    if target_type is None:
        return ConfigurationError(
            f"target {name!r}: unknown target type {kind!r}; known types: {', '.join(sorted(TARGET_TYPES))}"
        )
    fields = target_type.config.model_fields
    missing: list[str] = []
    unknown: list[str] = []
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"][1:]]   # [0] is the union's tag (the type)
        field_name = loc[0] if loc else ""
        if error["type"] == "missing":
            missing.append(field_name)
        elif error["type"] == "extra_forbidden":
            unknown.append(field_name)
        elif error["type"] == "value_error" or field_name not in fields:
            problems.append(str(error.get("ctx", {}).get("error", error["msg"])))
        elif error["type"] == "less_than_equal":
            problems.append(f"{field_name} must be at most {error['ctx']['le']}")
        else:
            annotation = fields[field_name].annotation
            expected = _EXPECTED.get(annotation)   # type: ignore[arg-type]
            if expected is None:
                expected = "an object of strings" if "dict" in str(annotation) else "valid"
            problems.append(f"{field_name} must be {expected}")
    if unknown:
        allowed = sorted(k for k in fields if k not in ("name", "type"))
        problems.insert(0, f"unknown setting {unknown[0]!r} for type {kind!r}; allowed: {allowed}")
    if missing:
        problems.insert(0, f"missing required setting(s) {missing} for type {kind!r}")
    return ConfigurationError(f"target {name!r}: {'; '.join(problems)}")


def parse_target(name: str, raw: Any, env: Mapping[str, str] | None = None) -> TargetConfig:
    """Build and validate one target definition; ConfigurationError names the target.

    ``env`` is where ``<secret>_env`` names are looked up (default: ``os.environ``).
    """
    if not isinstance(raw, dict):
        raise ConfigurationError(f"target {name!r}: definition must be a JSON object")
    if "name" in raw:
        raise ConfigurationError(f"target {name!r}: \"name\" is the key of the definition, not a setting")
    try:
        return TargetDefinition.validate_python({**raw, "name": name}, context={"env": env})
    except ValidationError as exc:
        raise _explain(name, raw.get("type"), exc) from None


class TargetRegistry:
    """The configured targets of this process; each definition is validated when first used."""

    def __init__(self, raw: Mapping[str, Any], *, default_local_path: Path, env: Mapping[str, str] | None = None,
                 load_error: str = "") -> None:
        self._raw = dict(raw)
        self._default_local_path = default_local_path
        self._env = env
        self._load_error = load_error
        self._parsed: dict[str, TargetConfig] = {}

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> TargetRegistry:
        """Read the targets file and the inline JSON. A syntax error fails every delivery clearly."""
        dist = settings.distribution
        raw: dict[str, Any] = {}
        error = ""
        sources: list[tuple[str, str]] = []
        if dist.targets_file:
            try:
                sources.append((f"DAMFLEET_DISTRIBUTION_TARGETS_FILE {dist.targets_file}",
                                Path(dist.targets_file).expanduser().read_text()))
            except OSError as exc:
                error = f"cannot read DAMFLEET_DISTRIBUTION_TARGETS_FILE {dist.targets_file}: {exc.strerror or exc}"
        if dist.targets_json:
            sources.append(("DAMFLEET_DISTRIBUTION_TARGETS_JSON", dist.targets_json))
        for origin, text in sources:
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                error = f"{origin} is not valid JSON: {exc}"
                continue
            if not isinstance(loaded, dict):
                error = f"{origin} must be a JSON object of target name -> definition"
                continue
            raw.update(loaded)
        return cls(raw, default_local_path=settings.state_path / "delivered", env=env, load_error=error)

    def names(self) -> list[str]:
        return sorted(set(self._raw) | {BUILTIN_LOCAL_TARGET})

    def get(self, name: str) -> TargetConfig:
        """The named target's validated definition; ConfigurationError names what is wrong."""
        cached = self._parsed.get(name)
        if cached is not None:
            return cached
        if self._load_error:
            raise ConfigurationError(f"delivery targets unusable (target {name!r}): {self._load_error}")
        if name in self._raw:
            config = parse_target(name, self._raw[name], self._env)
        elif name == BUILTIN_LOCAL_TARGET:
            config = LocalTargetConfig(name=name, type="local")
        else:
            raise ConfigurationError(
                f"unknown delivery target {name!r}; configured targets: {', '.join(self.names())}"
            )
        if isinstance(config, LocalTargetConfig) and not config.path:
            config = config.model_copy(update={"path": str(self._default_local_path)})
        self._parsed[name] = config
        return config
