"""Data contracts: GE suites run on real (tiny) Spark DataFrames as the gate before a publish.

GE runs several Spark jobs per expectation, so each suite is validated once per module (fixtures
below) and the tests assert on those results; everything that needs no Spark work (parameters,
suite loading) is checked without validating.
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import great_expectations.expectations as gxe
import pytest
from pyspark import StorageLevel
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from libs.ingest import contracts
from libs.ingest.contracts import ContractError, ContractFailed, ContractResult

SCHEMA = StructType([StructField("event_id", StringType(), True), StructField("amount", IntegerType(), True)])
# 5 rows: one null key, two amounts outside [0, 100] (-5 and 500).
ROWS = [("e1", 10), ("e2", 20), (None, 30), ("e4", -5), ("e5", 500)]


def row_bounds() -> list:
    return [gxe.ExpectTableRowCountToBeBetween(min_value={"$PARAMETER": "min_rows"},
                                               max_value={"$PARAMETER": "max_rows"})]


def passing_suite() -> list:
    return row_bounds() + [gxe.ExpectColumnValuesToNotBeNull(column="amount"),
                           gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=-10, max_value=1000)]


def failing_suite() -> list:
    return row_bounds() + [gxe.ExpectColumnToExist(column="amount"),
                           gxe.ExpectColumnValuesToNotBeNull(column="event_id"),
                           gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=100)]


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(ROWS, SCHEMA)


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_docs")


@pytest.fixture(scope="module")
def passed(frame, docs_dir) -> ContractResult:
    return contracts.validate(frame, "silver_ok", passing_suite(), {"min_rows": 1, "max_rows": 10},
                              docs_dir=str(docs_dir))


@pytest.fixture(scope="module")
def failed(frame, docs_dir) -> tuple[ContractResult, list]:
    suite = failing_suite()
    # A separate validation (fresh GE context) into the same docs folder as `passed`.
    return contracts.validate(frame, "silver_fail", suite, {"min_rows": 10, "max_rows": 100},
                              docs_dir=f"file://{docs_dir}"), suite


def test_passing_suite(passed):
    assert passed.success
    assert len(passed.outcomes) == 3 and all(o.success for o in passed.outcomes)
    assert passed.summary().splitlines()[0] == "suite silver_ok: PASSED 3 of 3 expectations"
    bounds = next(o for o in passed.outcomes if o.expectation == "expect_table_row_count_to_be_between")
    assert bounds.column is None and bounds.observed == "observed 5"
    assert bounds.expected == "min_value=1, max_value=10"   # parameters substituted


def test_failing_suite_names_expectations_columns_and_counts(failed, frame):
    result, suite = failed
    assert not result.success
    by_name = {(o.expectation, o.column): o for o in result.outcomes}
    assert by_name[("expect_column_to_exist", "amount")].success
    assert by_name[("expect_column_values_to_not_be_null", "event_id")].observed == \
        "1 of 5 rows unexpected (20.00%)"
    between = by_name[("expect_column_values_to_be_between", "amount")]
    assert between.observed.startswith("2 of 5 rows unexpected (40.00%), e.g. ")
    assert "-5" in between.observed and "500" in between.observed
    assert by_name[("expect_table_row_count_to_be_between", None)].observed == "observed 5"

    lines = result.summary().splitlines()
    assert lines[0] == "suite silver_fail: FAILED 3 of 4 expectations"
    failures = [line for line in lines if line.startswith("  - ")]
    assert len(failures) == 3                                  # the passed one is only counted
    assert any("expect_column_values_to_not_be_null(event_id): 1 of 5 rows unexpected" in f for f in failures)
    assert any("expect_column_values_to_be_between(amount)" in f and "2 of 5 rows unexpected" in f
               for f in failures)
    assert any("expect_table_row_count_to_be_between [min_value=10, max_value=100]: observed 5" in f
               for f in failures)
    # The caller's expectation objects are left alone and the frame is not left cached.
    assert all(e.id is None for e in suite)
    assert frame.storageLevel == StorageLevel.NONE


def test_data_docs_accumulate_across_validations(passed, failed, docs_dir):
    result, _ = failed
    index = Path(result.docs_index)
    assert index == docs_dir / "index.html" and index.is_file()
    assert passed.docs_index == result.docs_index
    text = index.read_text(encoding="utf-8")
    # Each validation ran in its own ephemeral context; the index still links both suites.
    assert "silver_ok" in text and "silver_fail" in text
    pages = list((docs_dir / "validations" / "silver_fail").rglob("*.html"))
    assert len(pages) == 1 and "event_id" in pages[0].read_text(encoding="utf-8")
    assert f"data docs: {index}" in result.summary()
    # Ephemeral: no GE project appears in the working directory.
    assert not Path(os.getcwd(), "gx").exists() and not Path(os.getcwd(), "great_expectations.yml").exists()


def test_gate_raises_with_summary_and_keeps_callers_cache(frame, monkeypatch):
    module = types.ModuleType("expectations.silver_gate_demo")
    module.EXPECTATIONS = failing_suite()
    monkeypatch.setitem(sys.modules, "expectations.silver_gate_demo", module)
    frame.persist()
    try:
        with pytest.raises(ContractFailed) as caught:
            contracts.gate(frame, "silver_gate_demo", {"min_rows": 1, "max_rows": 100})
        assert frame.storageLevel != StorageLevel.NONE         # cached by the caller: stays cached
    finally:
        frame.unpersist()
    result = caught.value.result
    assert str(caught.value) == result.summary()
    assert result.suite == "silver_gate_demo" and result.docs_index is None
    assert result.summary().splitlines()[0] == "suite silver_gate_demo: FAILED 2 of 4 expectations"
    assert module.EXPECTATIONS[0].id is None                   # gate worked on copies


def test_missing_parameter_is_a_clear_error_before_any_spark_work(frame):
    with pytest.raises(ContractError, match=r"suite parameter 'max_rows' \(used by "
                                            r"expect_table_row_count_to_be_between.max_value\) has no value"):
        contracts.validate(frame, "silver_x", passing_suite(), {"min_rows": 1})
    assert frame.storageLevel == StorageLevel.NONE


def test_load_expectations_returns_fresh_copies(monkeypatch):
    module = types.ModuleType("expectations.silver_copy_demo")
    module.EXPECTATIONS = [gxe.ExpectColumnValuesToNotBeNull(column="event_id")]
    monkeypatch.setitem(sys.modules, "expectations.silver_copy_demo", module)
    first, second = contracts.load_expectations("silver_copy_demo"), contracts.load_expectations("silver_copy_demo")
    assert first == module.EXPECTATIONS and first[0] is not module.EXPECTATIONS[0] and first[0] is not second[0]
    first[0].column = "changed"
    assert module.EXPECTATIONS[0].column == "event_id"


def test_load_expectations_errors_name_the_file(monkeypatch):
    with pytest.raises(ContractError, match=r"expectations/silver_no_such_table\.py does not exist"):
        contracts.load_expectations("silver_no_such_table")
    monkeypatch.setitem(sys.modules, "expectations.silver_empty_demo", types.ModuleType("expectations.silver_empty_demo"))
    with pytest.raises(ContractError, match=r"expectations/silver_empty_demo\.py defines no EXPECTATIONS"):
        contracts.load_expectations("silver_empty_demo")
    with pytest.raises(ContractError, match="not a valid suite module name"):
        contracts.load_expectations("../etc")


def test_remote_docs_dir_is_refused_before_validation(frame):
    with pytest.raises(ContractError, match="docs_dir must be a local folder"):
        contracts.validate(frame, "silver_x", passing_suite(), {"min_rows": 1, "max_rows": 10},
                           docs_dir="s3a://bucket/_data_docs")
