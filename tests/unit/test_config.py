"""Settings: identical keys across environments, overrides, placeholders, clear errors."""
from __future__ import annotations

import pytest

from libs.platform.config import KNOWN_ENVS, ConfigError, flatten_keys, load_raw, load_settings


def test_every_environment_has_identical_keys():
    keys = {env: flatten_keys(load_raw(env)) for env in KNOWN_ENVS}
    assert keys["dev"] == keys["local"]
    assert keys["prod"] == keys["local"]


def test_local_paths_derive_from_overridden_lakehouse_root(tmp_path):
    s = load_settings("local", environ={"CGOV__LAKEHOUSE_ROOT": str(tmp_path)})
    assert s.lakehouse_root == str(tmp_path)
    assert s.checkpoint_dir == f"{tmp_path}/_checkpoints"
    assert s.table("smoke_graph_metrics") == f"{tmp_path}/smoke/graph_metrics"
    assert s.mlflow["tracking_uri"] == f"sqlite:///{tmp_path}/_mlflow/mlflow.db"
    assert s.mlflow["artifact_location"] == f"{tmp_path}/_mlflow/artifacts"


def test_relative_root_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings("local", environ={})
    assert s.lakehouse_root == str(tmp_path / "lakehouse")


def test_nested_and_spark_option_override():
    s = load_settings("local", environ={"CGOV__SPARK__MASTER": "local[1]",
                                        "CGOV__SPARK__OPTIONS__SPARK.SQL.SHUFFLE.PARTITIONS": "3"})
    assert s.spark_master == "local[1]"
    assert s.spark_options["spark.sql.shuffle.partitions"] == "3"


def test_object_store_root_is_kept_verbatim():
    s = load_settings("prod", environ={})
    assert s.table("smoke_graph_metrics") == "s3a://creatorgov-prod-lakehouse/smoke/graph_metrics"


@pytest.mark.parametrize("environ, message", [
    ({"CGOV__LAKEHOUSE_ROTO": "/x"}, "no setting lakehouse_roto"),
    ({"CGOV__ENV__X": "1"}, "'env' is not a section"),
])
def test_bad_override_is_a_clear_error(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings("local", environ=environ)


def test_unknown_env_and_table():
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        load_settings("qa", environ={})
    with pytest.raises(ConfigError, match="table 'nope' is not declared"):
        load_settings("local", environ={}).table("nope")
