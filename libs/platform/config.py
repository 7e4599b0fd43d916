"""Per-environment settings.

One YAML per environment (`conf/<env>.yaml`) with identical keys, so a job never branches on the
environment name: it reads keys. Environment variables named ``CGOV__<KEY>__<SUBKEY>`` override
single values (e.g. ``CGOV__LAKEHOUSE_ROOT=/tmp/lh``) -- that is how tests and CI point a job at a
scratch lakehouse without editing files. String values may reference ``{lakehouse_root}`` so that
one override moves every table, checkpoint and MLflow store together.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

ENV_PREFIX = "CGOV__"
KNOWN_ENVS = ("local", "dev", "prod")
_LOCAL_SCHEMES = ("", "file")


class ConfigError(ValueError):
    """A settings file or override is missing, malformed or inconsistent."""


def _conf_text(env: str) -> str:
    if env not in KNOWN_ENVS:
        raise ConfigError(f"unknown environment {env!r}; expected one of {', '.join(KNOWN_ENVS)}")
    # importlib.resources works from a source checkout and from the installed wheel alike.
    return resources.files("conf").joinpath(f"{env}.yaml").read_text(encoding="utf-8")


def load_raw(env: str) -> dict[str, Any]:
    """The parsed YAML of one environment, before overrides and substitution."""
    data = yaml.safe_load(_conf_text(env))
    if not isinstance(data, dict):
        raise ConfigError(f"conf/{env}.yaml must be a mapping at top level")
    return data


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{name}: {part!r} is not a section of the settings")
            node = node[part]
        leaf = path[-1]
        # Spark option keys contain dots and are case-sensitive; match them case-insensitively.
        match = next((k for k in node if str(k).lower() == leaf), None)
        if match is None:
            raise ConfigError(f"{name}: no setting {'.'.join(path)} exists (typo?)")
        node[match] = value
    return out


def _absolutise(root: str) -> str:
    """Local relative roots become absolute, so Spark, Delta and MLflow agree on one place."""
    if "://" in root:
        return root
    return str(Path(root).expanduser().resolve())


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, str):
        try:
            return node.format(**values)
        except KeyError as exc:
            raise ConfigError(f"unknown placeholder {exc} in setting {node!r}") from None
    return node


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one environment; attribute access for the keys every job uses."""

    env: str
    # Not in repr: the tree holds secrets (the pseudonymisation salt), and reprs end up in logs.
    data: Mapping[str, Any] = field(repr=False)

    @property
    def lakehouse_root(self) -> str:
        return self.data["lakehouse_root"]

    @property
    def checkpoint_dir(self) -> str:
        return self.data["checkpoint_dir"]

    @property
    def spark_master(self) -> str:
        return self.data["spark"]["master"]

    @property
    def spark_options(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.data["spark"].get("options") or {}).items()}

    @property
    def mlflow(self) -> Mapping[str, str]:
        return self.data["mlflow"]

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level settings section (``ingest``, ``maintenance``...); clear error when absent."""
        value = self.data.get(name)
        if not isinstance(value, Mapping):
            raise ConfigError(f"section {name!r} is missing from conf/{self.env}.yaml")
        return value

    @property
    def pseudonymisation_salt(self) -> str:
        """The salt of user-id pseudonyms; refuses an empty one rather than hash without a secret."""
        salt = str(self.section("pseudonymisation").get("salt") or "")
        if not salt:
            raise ConfigError(f"pseudonymisation.salt is empty in conf/{self.env}.yaml: set the environment "
                              "variable CGOV__PSEUDONYMISATION__SALT (never commit it)")
        return salt

    def table(self, name: str) -> str:
        """Storage path of a named table; an unknown name is a clear error, not a silent default."""
        tables = self.data["tables"]
        if name not in tables:
            raise ConfigError(f"table {name!r} is not declared in conf/{self.env}.yaml (known: {sorted(tables)})")
        return tables[name]


def load_settings(env: str = "local", environ: Mapping[str, str] | None = None) -> Settings:
    """Load ``conf/<env>.yaml``, apply ``CGOV__*`` overrides, resolve ``{lakehouse_root}``."""
    environ = os.environ if environ is None else environ
    data = _apply_env_overrides(load_raw(env), environ)
    if data.get("env") != env:
        raise ConfigError(f"conf/{env}.yaml declares env={data.get('env')!r}")
    root = _absolutise(str(data["lakehouse_root"]))
    data["lakehouse_root"] = root
    data = _substitute(data, {"lakehouse_root": root})
    return Settings(env=env, data=data)


def flatten_keys(node: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every key path of a settings tree, e.g. ``spark.options.spark.ui.enabled``."""
    keys: set[str] = set()
    for k, v in node.items():
        path = f"{prefix}{k}"
        keys.add(path)
        if isinstance(v, Mapping):
            keys |= flatten_keys(v, path + ".")
    return keys
