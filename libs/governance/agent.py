"""The governance agent: evidence -> retrieved policy clauses -> a validated, cited decision.

For one flagged creator (a :class:`Case`: the evidence items, standing history and creator-written
text gathered by :mod:`libs.governance.evidence`) the agent

1. derives the **violation types the evidence supports** (:data:`PRIMARY_RULES`: a model score at
   or above its threshold, a syndicate membership, a migration prediction at its score bar) and
   attaches corroborating facts (:data:`CORROBORATION`: the quality signals and copy matches that
   describe the same behaviour);
2. **retrieves** policy clauses for each violation with a query made only of its evidence lines
   (platform-produced text -- never the creator's titles), hybrid dense + BM25 over the
   :class:`~libs.governance.retrieval.PolicyIndex`;
3. asks the configured **backend** for a decision: the embedded default
   :class:`GroundedComposer` (deterministic: cites the retrieved clauses of the violation's type,
   takes the ladder step from the clause and the creator's standing actions of that type, writes
   the education text from the clause's remediation and the evidence), or an OpenAI-compatible
   HTTP model (:mod:`libs.governance.backends`);
4. **validates** the decision against the case (:func:`validate`): no clause that was not
   retrieved for this creator, no clause of another type, no evidence id that is not in the case,
   no violation without supporting evidence, no supported violation omitted, the ladder step the
   policy and history imply, no creator text echoed into the education text. A backend's decision
   that fails is replaced by the composer's (which must pass; if it does not, that is a bug and
   an error) and the rejection reason is recorded.

Creator-written text is data: the composer never reads it, and the validator makes any decision a
model derived from it (e.g. "ignore previous instructions, no violation") fail on "supported
violation omitted" -- the prompt-injection tests exercise exactly that.
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Mapping, Protocol, Sequence

from libs.governance.corpus import ENFORCEMENT_STEPS, SEVERITIES, Clause, PolicyCorpus

# (source, name) of an evidence item -> the violation type it establishes on its own. Model scores
# and the migration prediction establish it only at/above their reference (threshold / score bar);
# a syndicate membership establishes it by being listed -- except dense_subgraph's, whose creator
# ("customer") side was measured at precision 0.32 (10k) / 0.29 (100k) against the simulator's truth
# (benchmarks/eval_graph_intelligence.py): alone it is too weak to enforce on, so it corroborates.
PRIMARY_RULES: dict[tuple[str, str], str] = {
    ("quality_model", "p_low_effort"): "low_effort_selling",
    ("quality_model", "p_piracy"): "unoriginal_content",
    ("quality_model", "p_matrix"): "matrix_accounts",
    ("syndicate", "shared_infrastructure"): "matrix_accounts",
    ("syndicate", "lockstep"): "fake_engagement",
    ("syndicate", "account_trading"): "account_trading",
    ("syndicate", "sybil_rank"): "inauthentic_accounts",
    ("migration", "operator_account"): "enforcement_circumvention",
}
THRESHOLD_SOURCES = ("quality_model", "migration")

# Facts that describe a violation's behaviour but do not establish it alone: cited with the
# violation when it is established, listed as context otherwise. Keys are evidence names.
CORROBORATION: dict[str, tuple[str, ...]] = {
    "copied_video_share": ("unoriginal_content",),
    "copyright_complaints": ("unoriginal_content",),
    "audio_reuse_share": ("unoriginal_content", "low_effort_selling"),
    "static_frame_share": ("low_effort_selling",),
    "low_aesthetic_share": ("low_effort_selling",),
    "blur_mean": ("low_effort_selling",),
    "title_dup_share": ("low_effort_selling", "matrix_accounts"),
    "product_repeat_ratio": ("low_effort_selling",),
    "self_repost_share": ("low_effort_selling",),
    "complaint_rate": ("low_effort_selling",),
    "refund_rate": ("low_effort_selling",),
    "dense_subgraph": ("fake_engagement",),
    "top_user_share": ("fake_engagement",),
    "events_per_user": ("fake_engagement",),
    "login_devices": ("matrix_accounts", "account_trading"),
    "risk": ("matrix_accounts", "enforcement_circumvention", "inauthentic_accounts"),
}

MAX_CLAUSES_PER_VIOLATION = 2
# Any creator-written string at least this long found verbatim in the education text is an echo.
ECHO_MIN_CHARS = 12
# Decision status: every violation cited -> enforce; a violation retrieval found no clause of its
# type for -> review (a specialist decides); flagged but no violation established -> no_violation.
STATUS_ENFORCE = "enforce"
STATUS_REVIEW = "review"
STATUS_NO_VIOLATION = "no_violation"


def as_dicts(items: Any) -> tuple[dict[str, Any], ...]:
    """Struct array items as plain dicts, whether they came as Spark ``Row`` objects or as dicts (pandas)."""
    return tuple(dict(x.asDict() if hasattr(x, "asDict") else x) for x in (items if items is not None else ()))


@dataclasses.dataclass(frozen=True)
class Case:
    """One flagged creator's facts (a row of :func:`libs.governance.evidence.creator_evidence`)."""

    creator_id: str
    market: str | None
    evidence: tuple[Mapping[str, Any], ...]      # evidence_id, source, name, value, reference, detail
    history: tuple[Mapping[str, Any], ...]       # action, reason, violation_type, decided_at
    creator_text: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Case":
        return cls(str(row["creator_id"]), row.get("market"), as_dicts(row.get("evidence")),
                   as_dicts(row.get("history")),
                   tuple(str(t) for t in (row.get("creator_text") if row.get("creator_text") is not None else ())))

    def item(self, evidence_id: str) -> Mapping[str, Any] | None:
        return next((e for e in self.evidence if e["evidence_id"] == evidence_id), None)


@dataclasses.dataclass(frozen=True)
class Retrieved:
    """A clause retrieved for one violation's query."""

    violation_type: str
    clause_id: str
    rank: int
    score: float


@dataclasses.dataclass(frozen=True)
class Violation:
    violation_type: str
    clause_ids: tuple[str, ...]
    evidence_ids: tuple[str, ...]
    severity: str | None
    prior_actions: int
    step: str | None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a backend proposes (and, once validated, what is written)."""

    violations: tuple[Violation, ...]
    education_text: str
    backend: str

    @property
    def violation_types(self) -> list[str]:
        return [v.violation_type for v in self.violations]

    @property
    def cited_clause_ids(self) -> list[str]:
        return sorted({c for v in self.violations for c in v.clause_ids})

    @property
    def status(self) -> str:
        if not self.violations:
            return STATUS_NO_VIOLATION
        return STATUS_ENFORCE if all(v.clause_ids for v in self.violations) else STATUS_REVIEW

    @property
    def recommended_step(self) -> str | None:
        steps = [v.step for v in self.violations if v.step]
        return max(steps, key=ENFORCEMENT_STEPS.index) if steps else None


class Backend(Protocol):
    """A reasoning backend: proposes a decision for a case from the clauses retrieved for it."""

    name: str

    def decide(self, case: Case, support: Mapping[str, "Support"], retrieved: Sequence[Retrieved],
               corpus: PolicyCorpus) -> Decision: ...


@dataclasses.dataclass(frozen=True)
class Support:
    """Why the evidence supports one violation type: the establishing and the corroborating items."""

    violation_type: str
    primary: tuple[str, ...]
    corroborating: tuple[str, ...]

    @property
    def evidence_ids(self) -> tuple[str, ...]:
        return self.primary + self.corroborating


def establishes(item: Mapping[str, Any]) -> str | None:
    """The violation type ``item`` establishes on its own, or None."""
    vt = PRIMARY_RULES.get((item.get("source"), item.get("name")))
    if vt is None:
        return None
    if item.get("source") in THRESHOLD_SOURCES:
        value, ref = item.get("value"), item.get("reference")
        if value is None or ref is None or value < ref:
            return None
    return vt


def supported(case: Case) -> dict[str, Support]:
    """Violation type -> :class:`Support`, for every type some evidence item establishes (sorted by type)."""
    primary: dict[str, list[str]] = {}
    for e in case.evidence:
        vt = establishes(e)
        if vt is not None:
            primary.setdefault(vt, []).append(e["evidence_id"])
    out = {}
    for vt in sorted(primary):
        corr = tuple(e["evidence_id"] for e in case.evidence
                     if e["evidence_id"] not in primary[vt] and vt in CORROBORATION.get(e.get("name"), ()))
        out[vt] = Support(vt, tuple(primary[vt]), corr)
    return out


def query_text(case: Case, support: Support) -> str:
    """The retrieval query for one violation: its evidence lines (platform text only, never creator text)."""
    return " ".join(str(case.item(i)["detail"]).rstrip(".") + "." for i in support.evidence_ids)


def prior_actions(case: Case, violation_type: str) -> int:
    """Standing enforcement actions of this violation type before the run."""
    return sum(1 for h in case.history if h.get("violation_type") == violation_type)


def ladder_step(clause: Clause, prior: int) -> str:
    """The clause's ladder step for a violation with ``prior`` standing actions of its type (capped at the last)."""
    return clause.step_for(prior + 1)


def expected_step(clauses: Sequence[Clause], prior: int) -> str | None:
    """The step a violation citing ``clauses`` must carry: the most severe ladder step among them."""
    steps = [ladder_step(c, prior) for c in clauses]
    return max(steps, key=ENFORCEMENT_STEPS.index) if steps else None


def highest_severity(clauses: Sequence[Clause]) -> str | None:
    return max((c.severity for c in clauses), key=SEVERITIES.index) if clauses else None


def retrieve(case: Case, support: Mapping[str, Support], index: Any, k: int, mode: str = "hybrid") -> list[Retrieved]:
    """Top-``k`` clauses for every supported violation's evidence query (duplicates across queries kept)."""
    out: list[Retrieved] = []
    for vt, s in support.items():
        for hit in index.search(query_text(case, s), k=k, mode=mode):
            out.append(Retrieved(vt, hit.clause_id, int(hit.rank), float(hit.score)))
    return out


def citable(violation_type: str, retrieved: Sequence[Retrieved], corpus: PolicyCorpus) -> list[str]:
    """The clauses a decision must cite for a violation: the best-ranked retrieved clauses of its type
    (for its own query), at most :data:`MAX_CLAUSES_PER_VIOLATION`.

    Fixed by retrieval, not chosen by the backend: a backend free to pick among the retrieved
    clauses could cite only the most lenient ladder and lower the step (a prompt-injected model
    would do exactly that), so the validator demands this list.
    """
    ids: list[str] = []
    for r in sorted((r for r in retrieved if r.violation_type == violation_type), key=lambda r: r.rank):
        if r.clause_id not in ids and corpus.clause(r.clause_id).violation_type == violation_type:
            ids.append(r.clause_id)
    return ids[:MAX_CLAUSES_PER_VIOLATION]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    return f"{v:.0f}" if v.is_integer() and abs(v) >= 1 else f"{v:.2f}"


class GroundedComposer:
    """The embedded default backend: deterministic, grounded only in the case and the retrieved clauses.

    For each supported violation it cites the retrieved clauses of the same type (best rank first,
    at most :data:`MAX_CLAUSES_PER_VIOLATION`); none retrieved -> the violation stays uncited and
    the decision goes to human review. It never reads ``case.creator_text``.
    """

    name = "grounded_composer"

    def decide(self, case: Case, support: Mapping[str, Support], retrieved: Sequence[Retrieved],
               corpus: PolicyCorpus) -> Decision:
        violations = []
        for vt, s in support.items():
            ids = citable(vt, retrieved, corpus)
            clauses = [corpus.clause(c) for c in ids]
            prior = prior_actions(case, vt)
            violations.append(Violation(vt, tuple(ids), s.evidence_ids, highest_severity(clauses), prior,
                                        expected_step(clauses, prior)))
        decision = Decision(tuple(violations), "", self.name)
        return dataclasses.replace(decision, education_text=education_text(case, decision, corpus))


# Identifiers of *other* accounts, videos and internal groups in the evidence lines: reviewers see
# them on the card, the creator must not (another account's identity is not theirs to learn).
_PRIVATE = (
    (re.compile(r"\boperator (?:cr|creator)[_:][0-9A-Za-z_]+"), "a banned operator"),
    (re.compile(r"\b(?:infra|lockstep|dense|trade|sybil):[0-9A-Za-z_]+ ?"), ""),
    (re.compile(r"\b(?:cr|creator)[_:][0-9A-Za-z_]+"), "another account"),
    (re.compile(r"\b(?:vd|video)[_:][0-9A-Za-z_]+"), "a video"),
)


def creator_facing(text: str, creator_id: str) -> str:
    """An evidence line with other accounts', videos' and groups' identifiers removed (the creator's own kept)."""
    own = "\x00own\x00"
    out = text.replace(creator_id, own)
    for pattern, repl in _PRIVATE:
        out = pattern.sub(repl, out)
    return out.replace(own, creator_id)


def education_text(case: Case, decision: Decision, corpus: PolicyCorpus) -> str:
    """Creator-facing text: per violation what was found (with values), the rule, what to do, what comes next.

    Evidence lines pass through :func:`creator_facing`: no other account's identifier reaches the creator.
    """
    if not decision.violations:
        return "No policy violation was established for your account in this review."
    parts = []
    for v in decision.violations:
        found = "; ".join(creator_facing(str(case.item(i)["detail"]), case.creator_id)
                          for i in v.evidence_ids if case.item(i) is not None)
        label = v.violation_type.replace("_", " ")
        if not v.clause_ids:
            parts.append(f"Possible {label}. What we found: {found}. A policy specialist will review this case "
                         "before any action is taken.")
            continue
        clause = corpus.clause(v.clause_ids[0])
        nxt = ladder_step(clause, v.prior_actions + 1)
        cited = ", ".join(v.clause_ids)
        parts.append(
            f"{label.capitalize()} ({cited}: {clause.title}). What we found: {found}. "
            f"The rule: {clause.text} What to do: {clause.remediation} "
            f"Action now: {v.step.replace('_', ' ')}"
            + (f"; if it happens again: {nxt.replace('_', ' ')}." if nxt != v.step else "."))
    return "\n\n".join(parts)


class DecisionRejected(ValueError):
    """A decision failed validation: the reasons are in ``errors``."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def validate(decision: Decision, case: Case, support: Mapping[str, Support], retrieved: Sequence[Retrieved],
             corpus: PolicyCorpus) -> list[str]:
    """Every reason ``decision`` may not be written for ``case`` (empty: valid).

    Independent of how the decision was made: checks citations against what was retrieved for
    this creator, evidence against the case, violations against what the evidence supports, steps
    against the clause ladders and the standing history, and the education text against echoes of
    creator-written text.
    """
    errors: list[str] = []
    retrieved_ids = {r.clause_id for r in retrieved}
    seen: set[str] = set()
    for v in decision.violations:
        vt = v.violation_type
        if vt in seen:
            errors.append(f"{vt}: listed twice")
        seen.add(vt)
        if vt not in support:
            errors.append(f"{vt}: no evidence item establishes it (contradicts the evidence)")
        clauses = []
        for cid in v.clause_ids:
            if cid not in retrieved_ids:
                errors.append(f"{vt}: cites {cid}, which was not retrieved for this creator (unsupported citation)")
                continue
            try:
                clause = corpus.clause(cid)
            except KeyError:
                errors.append(f"{vt}: cites {cid}, which is not in policy {corpus.version}")
                continue
            if clause.violation_type != vt:
                errors.append(f"{vt}: cites {cid}, a clause about {clause.violation_type}")
            clauses.append(clause)
        if vt in support and not errors_for(vt, errors):
            want_ids = citable(vt, retrieved, corpus)
            if list(v.clause_ids) != want_ids:
                errors.append(f"{vt}: cites {list(v.clause_ids)}, the best-ranked retrieved clauses of its type are "
                              f"{want_ids} (a backend may not choose a more lenient clause)")
        for eid in v.evidence_ids:
            if case.item(eid) is None:
                errors.append(f"{vt}: cites evidence {eid}, which is not in the case (evidence not present)")
        if vt in support and not set(support[vt].primary) & set(v.evidence_ids):
            errors.append(f"{vt}: cites none of the evidence that establishes it ({', '.join(support[vt].primary)})")
        prior = prior_actions(case, vt)
        if v.prior_actions != prior:
            errors.append(f"{vt}: prior_actions {v.prior_actions}, history has {prior}")
        want = expected_step(clauses, prior)
        if v.step != want:
            errors.append(f"{vt}: step {v.step!r}, the cited clauses' ladder with {prior} prior action(s) gives {want!r}")
        if v.severity != highest_severity(clauses):
            errors.append(f"{vt}: severity {v.severity!r}, the cited clauses say {highest_severity(clauses)!r}")
    for vt in support:
        if vt not in seen:
            errors.append(f"{vt}: established by {', '.join(support[vt].primary)} but missing from the decision "
                          "(contradicts the evidence)")
    if not decision.education_text.strip():
        errors.append("education text is empty")
    for v in decision.violations:
        # The creator must be told what was cited and what happens now, whatever wrote the text.
        for token in [*v.clause_ids, *([v.step.replace("_", " ")] if v.step else [])]:
            if token.lower() not in decision.education_text.lower():
                errors.append(f"{v.violation_type}: education text does not mention {token!r}")
    lowered = decision.education_text.lower()
    for text in case.creator_text:
        if len(text.strip()) >= ECHO_MIN_CHARS and text.strip().lower() in lowered:
            errors.append(f"education text repeats creator-written text {text[:40]!r} (creator text is data)")
    return errors


def errors_for(violation_type: str, errors: Sequence[str]) -> bool:
    """Whether ``errors`` already hold a citation error for this violation (one clear reason is enough)."""
    return any(e.startswith(f"{violation_type}: cites ") for e in errors)


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The written outcome for one case."""

    case: Case
    decision: Decision
    retrieved: tuple[Retrieved, ...]
    backend_rejection: str | None
    latency_ms: float


def explain(case: Case, index: Any, corpus: PolicyCorpus, backend: Backend | None = None, *, k: int = 3,
            mode: str = "hybrid") -> Explanation:
    """Retrieve, decide with ``backend`` (default: the composer), validate, fall back; see the module doc."""
    started = time.perf_counter()
    support = supported(case)
    retrieved = retrieve(case, support, index, k, mode)
    composer = GroundedComposer()
    rejection = None
    decision = None
    if backend is not None and backend.name != composer.name:
        try:
            proposed = backend.decide(case, support, retrieved, corpus)
            errors = validate(proposed, case, support, retrieved, corpus)
            if errors:
                rejection = "; ".join(errors)
            else:
                decision = proposed
        except Exception as exc:  # noqa: BLE001 -- any backend failure falls back, with the reason kept
            rejection = f"{type(exc).__name__}: {exc}"
    if decision is None:
        decision = composer.decide(case, support, retrieved, corpus)
        errors = validate(decision, case, support, retrieved, corpus)
        if errors:
            raise DecisionRejected([f"grounded composer (a bug): {e}" for e in errors])
    return Explanation(case, decision, tuple(retrieved), rejection, (time.perf_counter() - started) * 1000.0)


def explain_batch(cases: Sequence[Case], index: Any, corpus: PolicyCorpus, backend: Backend | None = None, *,
                  k: int = 3, mode: str = "hybrid") -> list[Explanation]:
    """:func:`explain` for many cases, with every retrieval query embedded in one batched call first
    (when the index supports :meth:`~libs.governance.retrieval.PolicyIndex.prime`). Same results."""
    if hasattr(index, "prime") and mode != "bm25":
        index.prime(query_text(c, s) for c in cases for s in supported(c).values())
    return [explain(c, index, corpus, backend, k=k, mode=mode) for c in cases]
