"""The policy corpus: the only text a governance explanation may cite.

Why a strict loader: an explanation shown to a creator cites clause ids and quotes their
remediation. A typo in the YAML (an unknown violation type, a ladder step out of order, a
duplicated id, a missing remediation) would otherwise surface weeks later as a wrong or empty
creator notice. ``load_corpus`` therefore rejects anything outside the documented format with a
:class:`PolicyCorpusError` that names the section, clause and field, and nothing downstream has to
re-check the corpus.

Why a hash: ``corpus_hash`` fingerprints the exact text that was loaded, so a stored decision can
prove which wording it cited even if someone forgot to bump ``version``.

Format (``policies/marketplace_policy.yaml``)::

    policy_set, version, effective_date, sections: [{id, title, summary, clauses: [clause, ...]}]
    clause: {id, title, violation_type, severity, text, examples, exceptions, ladder, remediation}

``ladder`` lists the enforcement steps for the 1st, 2nd, 3rd ... confirmed violation of a clause;
the last step repeats for every further violation.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

# Fixed order: reports, label sets and the agent's output schema enumerate types in this order.
VIOLATION_TYPES: tuple[str, ...] = (
    "unoriginal_content",
    "intellectual_property",
    "low_effort_selling",
    "matrix_accounts",
    "fake_engagement",
    "inauthentic_accounts",
    "account_trading",
    "enforcement_circumvention",
    "misleading_claims",
)
# Escalation order: a ladder is an increasing subsequence of this tuple.
ENFORCEMENT_STEPS: tuple[str, ...] = ("warning", "traffic_limit", "suspension", "permanent_ban")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

DEFAULT_CORPUS_PATH = Path(__file__).resolve().parent / "policies" / "marketplace_policy.yaml"

CHUNK_COLUMNS: tuple[str, ...] = ("chunk_id", "clause_id", "violation_type", "severity", "title", "text")

_TOP_FIELDS = ("policy_set", "version", "effective_date", "sections")
_SECTION_FIELDS = ("id", "title", "summary", "clauses")
_CLAUSE_FIELDS = ("id", "title", "violation_type", "severity", "text", "examples", "exceptions", "ladder",
                  "remediation")
# Section ids are short upper-case tags (ORIG, MULTI, ...); a clause id is "<SECTION>-<n>", n >= 1.
_SECTION_ID = re.compile(r"^[A-Z][A-Z0-9]{0,11}$")


class PolicyCorpusError(ValueError):
    """The corpus file does not follow the documented format (message names the clause and field)."""


@dataclass(frozen=True)
class Clause:
    """One citable rule. ``ladder[i]`` is the step for the (i+1)-th violation; the last step repeats."""

    id: str
    section_id: str
    section_title: str
    title: str
    violation_type: str
    severity: str
    text: str
    examples: tuple[str, ...]
    exceptions: tuple[str, ...]
    ladder: tuple[str, ...]
    remediation: str

    def step_for(self, nth_violation: int) -> str:
        """Enforcement step for the ``nth_violation``-th (1-based) confirmed violation of this clause."""
        if nth_violation < 1:
            raise ValueError(f"nth_violation must be >= 1, got {nth_violation}")
        return self.ladder[min(nth_violation, len(self.ladder)) - 1]


@dataclass(frozen=True)
class PolicyCorpus:
    """A validated policy set: clauses in file order (section by section)."""

    policy_set: str
    version: str
    effective_date: str
    clauses: tuple[Clause, ...]

    def clause(self, clause_id: str) -> Clause:
        """The clause with this id; ``KeyError`` naming the id if the corpus has none."""
        for c in self.clauses:
            if c.id == clause_id:
                return c
        raise KeyError(f"no clause {clause_id!r} in {self.policy_set} {self.version}")

    def by_type(self, violation_type: str) -> tuple[Clause, ...]:
        """Clauses of one violation type, in corpus order (ValueError for a type outside VIOLATION_TYPES)."""
        if violation_type not in VIOLATION_TYPES:
            raise ValueError(f"unknown violation_type {violation_type!r}; expected one of {VIOLATION_TYPES}")
        return tuple(c for c in self.clauses if c.violation_type == violation_type)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys.

    Plain ``yaml.safe_load`` keeps the last of two ``text:`` keys silently: a half-edited clause
    would load with the wrong wording and no error.
    """


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise PolicyCorpusError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _check_fields(obj: Any, expected: tuple[str, ...], where: str) -> dict:
    if not isinstance(obj, dict):
        raise PolicyCorpusError(f"{where}: expected a mapping, got {type(obj).__name__}")
    missing = [f for f in expected if f not in obj]
    unknown = sorted(str(f) for f in obj if f not in expected)
    if missing:
        raise PolicyCorpusError(f"{where}: missing field(s) {missing}")
    if unknown:
        raise PolicyCorpusError(f"{where}: unknown field(s) {unknown}; allowed: {list(expected)}")
    return obj


def _text(value: Any, where: str, field: str) -> str:
    """A non-empty string, whitespace-normalised (folded YAML leaves a trailing newline at most)."""
    if not isinstance(value, str):
        raise PolicyCorpusError(f"{where}: field {field!r} must be a string, got {type(value).__name__} "
                                f"({value!r}); quote it in the YAML")
    text = " ".join(value.split())
    if not text:
        raise PolicyCorpusError(f"{where}: field {field!r} is empty")
    return text


def _text_list(value: Any, where: str, field: str, min_items: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyCorpusError(f"{where}: field {field!r} must be a list, got {type(value).__name__}")
    if len(value) < min_items:
        raise PolicyCorpusError(f"{where}: field {field!r} needs at least {min_items} item(s), got {len(value)}")
    return tuple(_text(v, where, f"{field}[{i}]") for i, v in enumerate(value))


def _ladder(value: Any, where: str) -> tuple[str, ...]:
    steps = _text_list(value, where, "ladder", min_items=1)
    for s in steps:
        if s not in ENFORCEMENT_STEPS:
            raise PolicyCorpusError(f"{where}: unknown ladder step {s!r}; expected steps from {ENFORCEMENT_STEPS}")
    ranks = [ENFORCEMENT_STEPS.index(s) for s in steps]
    # Strictly increasing: a repeated or backwards step would make a repeat offence no harsher.
    if any(b <= a for a, b in zip(ranks, ranks[1:])):
        raise PolicyCorpusError(f"{where}: ladder {list(steps)} is not in escalation order {ENFORCEMENT_STEPS} "
                                f"(each step must be stricter than the one before)")
    return steps


def _date(value: Any) -> str:
    # An unquoted YAML date loads as datetime.date; accept it but store the ISO string (hashable, JSON-able).
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    text = _text(value, "corpus", "effective_date")
    try:
        dt.date.fromisoformat(text)
    except ValueError as e:
        raise PolicyCorpusError(f"corpus: field 'effective_date' must be an ISO date YYYY-MM-DD, got {text!r}") from e
    return text


def _parse_clause(raw: Any, section_id: str, section_title: str, position: int) -> Clause:
    label = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    where = f"clause {label}" if label else f"section {section_id} clause #{position}"
    c = _check_fields(raw, _CLAUSE_FIELDS, where)
    cid = _text(c["id"], where, "id")
    if not re.fullmatch(rf"{re.escape(section_id)}-[1-9][0-9]*", cid):
        raise PolicyCorpusError(f"clause {cid}: id must be '{section_id}-<n>' (prefixed by its section id "
                                f"{section_id!r}, n >= 1)")
    vtype = _text(c["violation_type"], where, "violation_type")
    if vtype not in VIOLATION_TYPES:
        raise PolicyCorpusError(f"{where}: unknown violation_type {vtype!r}; expected one of {VIOLATION_TYPES}")
    severity = _text(c["severity"], where, "severity")
    if severity not in SEVERITIES:
        raise PolicyCorpusError(f"{where}: unknown severity {severity!r}; expected one of {SEVERITIES}")
    return Clause(
        id=cid,
        section_id=section_id,
        section_title=section_title,
        title=_text(c["title"], where, "title"),
        violation_type=vtype,
        severity=severity,
        text=_text(c["text"], where, "text"),
        examples=_text_list(c["examples"], where, "examples", min_items=1),
        exceptions=_text_list(c["exceptions"], where, "exceptions", min_items=0),
        ladder=_ladder(c["ladder"], where),
        remediation=_text(c["remediation"], where, "remediation"),
    )


def parse_corpus(doc: Any) -> PolicyCorpus:
    """Validate an already-parsed YAML document (``dict``) and build the corpus."""
    top = _check_fields(doc, _TOP_FIELDS, "corpus")
    sections = top["sections"]
    if not isinstance(sections, list) or not sections:
        raise PolicyCorpusError("corpus: field 'sections' must be a non-empty list")
    clauses: list[Clause] = []
    seen_sections: set[str] = set()
    seen_clauses: set[str] = set()
    for i, raw_section in enumerate(sections, start=1):
        sid_raw = raw_section.get("id") if isinstance(raw_section, dict) else None
        where = f"section {sid_raw}" if isinstance(sid_raw, str) else f"section #{i}"
        s = _check_fields(raw_section, _SECTION_FIELDS, where)
        sid = _text(s["id"], where, "id")
        if not _SECTION_ID.fullmatch(sid):
            raise PolicyCorpusError(f"section {sid}: id must be a short upper-case tag matching {_SECTION_ID.pattern}")
        if sid in seen_sections:
            raise PolicyCorpusError(f"section {sid}: duplicate section id")
        seen_sections.add(sid)
        title = _text(s["title"], where, "title")
        _text(s["summary"], where, "summary")  # required (documentation), never cited
        if not isinstance(s["clauses"], list) or not s["clauses"]:
            raise PolicyCorpusError(f"section {sid}: field 'clauses' must be a non-empty list")
        for j, raw_clause in enumerate(s["clauses"], start=1):
            clause = _parse_clause(raw_clause, sid, title, j)
            if clause.id in seen_clauses:
                raise PolicyCorpusError(f"clause {clause.id}: duplicate clause id")
            seen_clauses.add(clause.id)
            clauses.append(clause)
    covered = {c.violation_type for c in clauses}
    uncovered = [t for t in VIOLATION_TYPES if t not in covered]
    if uncovered:
        # Every type the agent can assign must have something to cite, or its explanation is empty.
        raise PolicyCorpusError(f"corpus: violation type(s) with no clause: {uncovered}")
    return PolicyCorpus(
        policy_set=_text(top["policy_set"], "corpus", "policy_set"),
        version=_text(top["version"], "corpus", "version"),
        effective_date=_date(top["effective_date"]),
        clauses=tuple(clauses),
    )


def load_corpus(path: str | Path | None = None) -> PolicyCorpus:
    """Load and validate a corpus file; default: the packaged ``policies/marketplace_policy.yaml``.

    Raises :class:`PolicyCorpusError` (a ``ValueError``) naming the clause and field on any deviation
    from the format, and ``FileNotFoundError`` if the file does not exist.
    """
    p = Path(path) if path is not None else DEFAULT_CORPUS_PATH
    with p.open("r", encoding="utf-8") as fh:
        try:
            doc = yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 -- SafeLoader subclass
        except yaml.YAMLError as e:
            raise PolicyCorpusError(f"{p}: not valid YAML: {e}") from e
    return parse_corpus(doc)


def corpus_hash(corpus: PolicyCorpus) -> str:
    """``sha256`` hex digest of a canonical JSON of the whole corpus (every clause field, in order).

    Canonical = sorted keys, no insignificant whitespace, UTF-8; text is whitespace-normalised at
    load, so re-wrapping a YAML paragraph does not change the hash but changing a word does.
    """
    payload = json.dumps(asdict(corpus), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _joined(items: tuple[str, ...]) -> str:
    # Items are joined with "; " and the list ends with one full stop: strip an item's own final
    # full stop so "a." + "." never reads "a..".
    return "; ".join(i.rstrip(" .") for i in items) + "."


def chunk_text(clause: Clause) -> str:
    """``"<title>. <text> Examples: e1; e2. Exceptions: x1; x2."`` (no Exceptions part when there are none).

    Examples and exceptions are indexed with the rule because evidence-style queries ("28 of 31
    videos match other creators' earlier uploads") resemble the concrete examples more than the
    abstract rule, and exceptions carry the look-alike vocabulary a reviewer searches for.
    """
    out = f"{clause.title.rstrip(' .')}. {clause.text} Examples: {_joined(clause.examples)}"
    if clause.exceptions:
        out += f" Exceptions: {_joined(clause.exceptions)}"
    return out


def chunks(corpus: PolicyCorpus) -> pd.DataFrame:
    """One retrieval chunk per clause, in corpus order (clauses are short, so never split).

    Columns ``chunk_id`` (= clause id), ``clause_id``, ``violation_type``, ``severity``, ``title``, ``text``.
    """
    rows = [(c.id, c.id, c.violation_type, c.severity, c.title, chunk_text(c)) for c in corpus.clauses]
    return pd.DataFrame(rows, columns=list(CHUNK_COLUMNS))
