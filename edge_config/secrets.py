"""Secrets in the site file: only ever as ``${ENV_NAME}`` references.

A secret field (MQTT password, channel tokens) must hold exactly ``"${NAME}"``. The loader resolves
it from the ``env`` mapping passed to :func:`edge_config.load_config` (default ``os.environ``)
into a :class:`pydantic.SecretStr`, so the value never shows in ``repr``/``str``/dumps. A literal
value is refused: config files get copied, mailed and committed, environment files do not.

Error messages built here never contain the offending value (only the variable *name*).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BeforeValidator, SecretStr, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

ENV_REF_PATTERN = r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def env_from_context(info: ValidationInfo) -> Mapping[str, str]:
    """The env mapping the loader passed in the validation context, else ``os.environ``."""
    ctx = info.context if isinstance(info.context, Mapping) else {}
    env = ctx.get("env")
    return env if isinstance(env, Mapping) else os.environ


# Any: a pydantic validator gets the raw input value
def resolve_secret(value: Any, info: ValidationInfo) -> Any:
    """BeforeValidator for secret fields: ``"${NAME}"`` -> ``SecretStr(env[NAME])``."""
    if value is None or isinstance(value, SecretStr):
        return value  # None: field not set; SecretStr: already resolved (programmatic construction)
    if not isinstance(value, str):
        raise PydanticCustomError(
            "secret_type",
            'must be an environment reference written as a quoted string like "${MQTT_PASSWORD}"',
        )
    match = _ENV_REF.fullmatch(value.strip())
    if match is None:
        raise PydanticCustomError(
            "secret_literal",
            "secrets must not be written into the config file; put the value in an environment "
            'variable (e.g. the gateway\'s systemd EnvironmentFile) and write "${NAME}" here instead',
        )
    name = match.group(1)
    env = env_from_context(info)
    if name not in env:
        raise PydanticCustomError(
            "env_undefined",
            "environment variable {name} is not set; export {name} for the gateway process "
            "(e.g. in its EnvironmentFile) or remove this key",
            {"name": name},
        )
    resolved = env[name]
    if resolved == "":
        raise PydanticCustomError(
            "env_empty",
            "environment variable {name} is set but empty; give it a value or remove this key",
            {"name": name},
        )
    return SecretStr(resolved)


TOKEN_QUERY_KEYS = frozenset({"token", "access_token", "key", "secret", "sign", "password", "sig"})


def refuse_url_secrets(value: str) -> str:
    """A URL of the site file must not carry a secret (``user:password@`` or a token-like query
    parameter): URLs are printed (``sync status``, doctor) and logged with failed deliveries, and
    secrets belong in ``${ENV}`` references. The message names the parts, never the value."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:  # a malformed URL: the field's own check reports it
        return value
    if password is not None:
        raise ValueError(
            "the URL carries a password; secrets must not be written into the config file: remove "
            'user:password@ and put the credential in the setting for it as "${ENV_NAME}"'
        )
    keys = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)} & TOKEN_QUERY_KEYS
    if keys:
        raise ValueError(
            f"the URL carries a secret in its query ({', '.join(sorted(keys))}=...); secrets must not be written "
            'into the config file: drop it from the URL and set it as "${ENV_NAME}" in the setting for it'
        )
    return value


EnvSecret = Annotated[
    SecretStr,
    BeforeValidator(resolve_secret),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ENV_REF_PATTERN,
            "description": 'Environment reference like "${MQTT_PASSWORD}"; literal secrets are refused.',
        }
    ),
]
"""A secret field: validated from ``"${NAME}"`` only; holds a SecretStr after validation."""
