"""Data contracts: a table's Great Expectations suite as the gate between a load and its publish.

A silver job stages a candidate DataFrame, calls :func:`gate` with the table name, and only
commits to Delta when the suite passes; otherwise :class:`ContractFailed` carries a readable
summary (which expectation, which column, how many rows, a few offending values) for the task
log and the audit table.

Suites are Python, not YAML: ``expectations/<table>.py`` exports ``EXPECTATIONS``, a list of
``great_expectations.expectations`` objects, so they are reviewed, imported and shipped in the
wheel like any other code. Values that change per run (the row-count bounds derived from the
previous period) are GE suite parameters (``{"$PARAMETER": "min_rows"}``) supplied here.

How GE is driven, and why:

* **Ephemeral context, built per call.** No ``great_expectations.yml`` in the repository and
  nothing written to the working directory; a fresh context per validation means no state
  leaks between tables or runs. It is cheap (milliseconds); the cost is in the Spark jobs.
* **Spark data source + dataframe asset + whole-dataframe batch definition**, the suite, a
  validation definition and a checkpoint (GE 1.x's unit of "validate, then act"); the data-docs
  update is the checkpoint's action, so docs are built incrementally for this one result.
* **Result format BASIC** with a few partial unexpected values: unexpected counts and examples
  without SUMMARY/COMPLETE's extra index lists and full value collections.
* **Cache state is restored.** GE persists the validated DataFrame (its metrics run several
  Spark jobs over it) and never unpersists it. We unpersist afterwards unless the caller had
  already cached it -- a job that wants its publish to reuse the validated rows caches them
  before the gate, and keeps control of when they are released.
* **Missing suite parameters fail before any Spark work**, naming the parameter and the
  expectation, instead of GE's deep ``SuiteParameterError`` traceback mid-validation.
* **Data docs** (optional ``docs_dir``, a local folder) need GE's *source* stores to see
  earlier results: GE's index builder lists only results present in the context's stores and
  *deletes* pages of results it cannot find. With a fresh context per call that would wipe every
  other table's pages, so when docs are wanted the suite and validation-result stores are kept
  as JSON under ``<docs_dir>/_gx_stores``; every table and run then accumulates in one site.
* **Quiet**: GE's progress bars are off (context setting) and its loggers are held at WARNING
  unless the application configured them (GE logs hundreds of INFO lines on import).

GE's context handling is process-global (a module-level project manager and expression
parser), so validations in one process are serialised by a lock.
"""
from __future__ import annotations

import copy
import importlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import urlparse

if TYPE_CHECKING:  # GE takes seconds to import; only modules that validate pay for it.
    from great_expectations.expectations import Expectation
    from pyspark.sql import DataFrame

EXPECTATIONS_PACKAGE = "expectations"
# A few example values per failed expectation: enough to recognise the defect in a log line.
PARTIAL_UNEXPECTED_COUNT = 5
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT}
DOCS_SITE_NAME = "cgov_contracts"
DOCS_STORES_DIR = "_gx_stores"
# The docs index links this many of the most recent validations (all tables together); older
# pages stay on disk. Bounds the index rebuild, which reads each linked result.
DOCS_INDEX_LIMIT = 500
# Keys of an expectation's configuration that are not part of what it expects.
_NOT_EXPECTED = frozenset({"column", "column_list", "column_A", "column_B", "batch_id", "result_format",
                           "catch_exceptions", "include_config", "meta", "notes", "condition_parser"})
_MAX_TEXT = 120

_LOCK = threading.Lock()

# GE's loggers stay at WARNING unless the application set their level itself. Done on import of
# this module, i.e. before the suites import GE: GE's own import logs hundreds of INFO lines,
# which a job that configures INFO logging for its messages would otherwise print.
if logging.getLogger("great_expectations").level == logging.NOTSET:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


class ContractError(ValueError):
    """A contract cannot be run as written: missing suite module, parameter or bad arguments."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one expectation fared, reduced to what an operator reads in a task log."""

    expectation: str            # e.g. "expect_column_values_to_not_be_null"
    column: str | None          # the column(s) it is about; None for table-level expectations
    success: bool
    observed: str               # observed value / unexpected count and percent / a few values
    expected: str = ""          # its arguments after parameter substitution, e.g. "min_value=0"

    def line(self) -> str:
        head = self.expectation + (f"({self.column})" if self.column else "")
        if self.expected:
            head += f" [{self.expected}]"
        return f"{head}: {self.observed}" if self.observed else head


@dataclass(frozen=True)
class ContractResult:
    """Outcome of one suite on one DataFrame."""

    suite: str
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    docs_index: str | None      # the data-docs index.html, None when no docs were built

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def summary(self) -> str:
        """One header line, one line per failed expectation; passed ones are only counted."""
        failed = self.failed
        n = len(self.outcomes)
        head = (f"suite {self.suite}: FAILED {len(failed)} of {n} expectations" if not self.success
                else f"suite {self.suite}: PASSED {n} of {n} expectations")
        lines = [head] + [f"  - {o.line()}" for o in failed]
        if self.docs_index:
            lines.append(f"  data docs: {self.docs_index}")
        return "\n".join(lines)


class ContractFailed(RuntimeError):
    """The data broke its contract; ``.result`` holds every outcome, ``str()`` the summary."""

    def __init__(self, result: ContractResult) -> None:
        super().__init__(result.summary())
        self.result = result


def load_expectations(table: str) -> list[Expectation]:
    """Fresh deep copies of ``expectations/<table>.py``'s ``EXPECTATIONS``.

    Copies, because GE mutates expectations when they join a suite (ids, suite back-reference):
    the module's list must stay pristine for the next call in the same process.
    """
    from great_expectations.expectations import Expectation

    if not isinstance(table, str) or not table.isidentifier():
        raise ContractError(f"table name {table!r} is not a valid suite module name")
    module_name = f"{EXPECTATIONS_PACKAGE}.{table}"
    where = f"{EXPECTATIONS_PACKAGE}/{table}.py"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (EXPECTATIONS_PACKAGE, module_name):
            raise  # the suite exists but imports something missing: that is its own bug
        raise ContractError(f"no data contract for table {table!r}: {where} does not exist") from None
    where = getattr(module, "__file__", None) or where
    expectations = getattr(module, "EXPECTATIONS", None)
    if expectations is None:
        raise ContractError(f"{where} defines no EXPECTATIONS list")
    if not isinstance(expectations, (list, tuple)) or not expectations:
        raise ContractError(f"{where}: EXPECTATIONS must be a non-empty list of expectations")
    bad = [i for i, e in enumerate(expectations) if not isinstance(e, Expectation)]
    if bad:
        raise ContractError(f"{where}: EXPECTATIONS[{bad[0]}] is a {type(expectations[bad[0]]).__name__}, "
                            "not a great_expectations.expectations.Expectation")
    return [copy.deepcopy(e) for e in expectations]


def validate(df: DataFrame, suite_name: str, expectations: Sequence[Expectation],
             parameters: Mapping[str, Any] | None = None,
             docs_dir: str | os.PathLike[str] | None = None) -> ContractResult:
    """Run ``expectations`` as suite ``suite_name`` on ``df``; never raises for failed data.

    ``parameters`` supplies the suite parameters (``{"$PARAMETER": name}`` values);
    ``docs_dir`` (a local folder or ``file://`` URI) gets GE's HTML data docs including this
    result, and the returned ``docs_index`` is its ``index.html``.
    """
    from great_expectations.expectations import Expectation

    if not isinstance(suite_name, str) or not suite_name:
        raise ContractError(f"suite name must be a non-empty string, got {suite_name!r}")
    if not expectations:
        raise ContractError(f"suite {suite_name}: no expectations; a gate that checks nothing is a misconfiguration")
    for i, e in enumerate(expectations):
        if not isinstance(e, Expectation):
            raise ContractError(f"suite {suite_name}: expectation #{i} is a {type(e).__name__}, "
                                "not a great_expectations.expectations.Expectation")
    params = dict(parameters or {})
    _check_parameters(suite_name, expectations, params)
    docs_root = _local_dir(docs_dir) if docs_dir is not None else None

    from pyspark import StorageLevel

    was_cached = df.storageLevel != StorageLevel.NONE
    try:
        with _LOCK:
            result = _run(df, suite_name, [copy.deepcopy(e) for e in expectations], params, docs_root)
    finally:
        if not was_cached:
            df.unpersist()
    outcomes = tuple(_outcome(r) for r in result.results)
    index = str(docs_root / "index.html") if docs_root is not None else None
    return ContractResult(suite=suite_name, success=bool(result.success), outcomes=outcomes, docs_index=index)


def gate(df: DataFrame, table: str, parameters: Mapping[str, Any] | None = None,
         docs_dir: str | os.PathLike[str] | None = None) -> ContractResult:
    """Validate ``df`` against ``expectations/<table>.py``; raise :class:`ContractFailed` unless it passes."""
    result = validate(df, table, load_expectations(table), parameters=parameters, docs_dir=docs_dir)
    if not result.success:
        raise ContractFailed(result)
    return result


# --- internals -------------------------------------------------------------------------------


def _check_parameters(suite_name: str, expectations: Sequence[Expectation], params: Mapping[str, Any]) -> None:
    """Every ``$PARAMETER`` must resolve before any Spark work starts."""
    from great_expectations.core.suite_parameters import is_suite_parameter, parse_suite_parameter
    from great_expectations.exceptions import SuiteParameterError

    problems: list[str] = []
    for e in expectations:
        config = e.configuration
        for key, value in config.kwargs.items():
            if not is_suite_parameter(value):
                continue
            expression = value["$PARAMETER"]
            if f"$PARAMETER.{expression}" in value:  # GE's inline default value
                continue
            try:
                with _LOCK:  # GE's expression parser is a module-level singleton
                    parse_suite_parameter(expression, suite_parameters=dict(params))
            except SuiteParameterError as exc:
                what = f"{config.type}.{key}"
                detail = "" if expression in str(exc) else f" ({exc})"
                problems.append(f"suite parameter {expression!r} (used by {what}) has no value{detail}")
    if problems:
        given = ", ".join(sorted(params)) or "none"
        raise ContractError(f"suite {suite_name}: " + "; ".join(problems) + f"; parameters given: {given}")


def _local_dir(docs_dir: str | os.PathLike[str]) -> Path:
    text = os.fspath(docs_dir)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        text = parsed.path
    elif parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise ContractError(f"docs_dir must be a local folder (or file:// URI); {text!r} is not: GE's "
                            "filesystem docs site and stores cannot write to a Hadoop/object-store URI")
    return Path(text).expanduser().resolve()


def _context(docs_root: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    stores = copy.deepcopy(defaults.stores)
    sites: dict[str, Any] = {}
    if docs_root is not None:
        for store_name, folder in ((defaults.expectations_store_name, "expectations"),
                                   (defaults.validation_results_store_name, "validations")):
            stores[store_name]["store_backend"] = {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_root / DOCS_STORES_DIR / folder),
            }
        sites[DOCS_SITE_NAME] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_root)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "validation_results_limit": DOCS_INDEX_LIMIT},
        }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run(df: DataFrame, suite_name: str, expectations: list[Expectation], params: dict[str, Any],
         docs_root: Path | None) -> Any:
    """One validation through a checkpoint; returns GE's ExpectationSuiteValidationResult."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    context = _context(docs_root)
    batch_definition = (context.data_sources.add_spark("cgov")
                        .add_dataframe_asset(suite_name)
                        .add_batch_definition_whole_dataframe("whole_dataframe"))
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    # add_or_update: with docs the suite store is on disk and already holds earlier runs' suite.
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite))
    actions = [UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE_NAME])] if docs_root else []
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=suite_name, validation_definitions=[definition], actions=actions, result_format=RESULT_FORMAT))
    run = checkpoint.run(batch_parameters={"dataframe": df}, expectation_parameters=params,
                         run_id=RunIdentifier(run_name="contract"))
    (result,) = run.run_results.values()
    return result


def _outcome(r: Any) -> ExpectationOutcome:
    config = r.expectation_config
    kwargs = dict(config.kwargs)
    return ExpectationOutcome(
        expectation=config.type,
        column=_columns(kwargs),
        success=bool(r.success),
        observed=_observed(r.result or {}, r.exception_info or {}),
        expected=_short(", ".join(f"{k}={_value(v)}" for k, v in kwargs.items()
                                  if k not in _NOT_EXPECTED and v is not None)),
    )


def _columns(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column") is not None:
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ", ".join(map(str, kwargs["column_list"]))
    pair = [kwargs[k] for k in ("column_A", "column_B") if kwargs.get(k) is not None]
    return ", ".join(map(str, pair)) or None


def _observed(result: Mapping[str, Any], exception_info: Mapping[str, Any]) -> str:
    errors = _errors(exception_info)
    if errors:
        return _short("error: " + errors[0])
    if result.get("unexpected_count") is not None:
        unexpected, total = int(result["unexpected_count"]), int(result.get("element_count") or 0)
        percent = 100.0 * unexpected / total if total else 0.0
        text = f"{unexpected} of {total} rows unexpected ({percent:.2f}%)"
        examples = [v for v in result.get("partial_unexpected_list") or [] if v is not None]
        if examples:
            text += ", e.g. " + _short(", ".join(_value(v) for v in examples), 80)
        return text
    if "observed_value" in result:
        return "observed " + _short(_value(result["observed_value"]))
    return ""


def _errors(info: Mapping[str, Any]) -> list[str]:
    """Exception messages of a result: GE nests them per metric when a metric failed."""
    if "raised_exception" in info:
        return [str(info.get("exception_message") or "exception")] if info["raised_exception"] else []
    return [m for v in info.values() if isinstance(v, Mapping) for m in _errors(v)]


def _value(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _short(text: str, limit: int = _MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
