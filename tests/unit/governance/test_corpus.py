"""Policy corpus: the packaged YAML is valid, the loader rejects every malformed input by name,
chunks have the documented text, the hash pins the wording, and the retrieval labels cite real clauses.

No Spark: the corpus is a small driver-side document.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from libs.governance.corpus import (
    DEFAULT_CORPUS_PATH,
    ENFORCEMENT_STEPS,
    SEVERITIES,
    VIOLATION_TYPES,
    Clause,
    PolicyCorpus,
    PolicyCorpusError,
    chunks,
    corpus_hash,
    load_corpus,
)

REPO = Path(__file__).resolve().parents[3]
LABELS = REPO / "benchmarks" / "data" / "policy_retrieval_labels.yaml"

# A minimal valid corpus: one clause per violation type (the loader insists every type is covered).
# Each invalid-input test below changes exactly one thing in this text.
BASE = """\
policy_set: test-policy
version: "1.0"
effective_date: "2026-01-01"
sections:
  - id: ORIG
    title: Original content
    summary: Why originality matters.
    clauses:
      - id: ORIG-1
        title: Reposts
        violation_type: unoriginal_content
        severity: medium
        text: Do not repost other people's videos.
        examples: [reposting a clip]
        exceptions: [licensed reposts]
        ladder: [warning, traffic_limit, suspension]
        remediation: Film your own videos.
  - id: OTHER
    title: Everything else
    summary: One clause per remaining type.
    clauses:
      - {id: OTHER-1, title: Fakes, violation_type: intellectual_property, severity: critical, text: No fakes., examples: [replica bag], exceptions: [], ladder: [suspension, permanent_ban], remediation: Remove fakes.}
      - {id: OTHER-2, title: Slides, violation_type: low_effort_selling, severity: low, text: Show the product., examples: [slideshow], exceptions: [], ladder: [warning], remediation: Film it.}
      - {id: OTHER-3, title: Farms, violation_type: matrix_accounts, severity: high, text: One account., examples: [ten shops], exceptions: [family phone], ladder: [traffic_limit, suspension], remediation: Close extras.}
      - {id: OTHER-4, title: Likes, violation_type: fake_engagement, severity: high, text: No bought likes., examples: [like panel], exceptions: [], ladder: [traffic_limit], remediation: Stop buying.}
      - {id: OTHER-5, title: Sybils, violation_type: inauthentic_accounts, severity: high, text: Real people only., examples: [persona ring], exceptions: [], ladder: [suspension], remediation: Verify.}
      - {id: OTHER-6, title: Trading, violation_type: account_trading, severity: high, text: No account sales., examples: [bought account], exceptions: [], ladder: [suspension, permanent_ban], remediation: Re-verify.}
      - {id: OTHER-7, title: Evasion, violation_type: enforcement_circumvention, severity: critical, text: No new accounts after a ban., examples: [new account], exceptions: [], ladder: [suspension, permanent_ban], remediation: Appeal instead.}
      - {id: OTHER-8, title: Claims, violation_type: misleading_claims, severity: medium, text: Tell the truth., examples: [fake discount], exceptions: [], ladder: [warning, traffic_limit], remediation: Correct it.}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"test setup: {old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def _expect_error(tmp_path: Path, text: str, *fragments: str) -> str:
    with pytest.raises(PolicyCorpusError) as info:
        load_corpus(_write(tmp_path, text))
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in error message {msg!r}"
    return msg


# --------------------------------------------------------------------------- packaged corpus

def test_packaged_corpus_is_valid_and_covers_every_type() -> None:
    corpus = load_corpus()
    assert corpus.policy_set == "cgov-marketplace-creator-policy"
    assert corpus.version == "2026.11.1"
    assert corpus.effective_date == "2026-11-01"
    ids = [c.id for c in corpus.clauses]
    assert len(ids) == len(set(ids))
    assert 28 <= len(ids) <= 40
    per_type = Counter(c.violation_type for c in corpus.clauses)
    assert set(per_type) == set(VIOLATION_TYPES)
    assert min(per_type.values()) >= 2
    assert corpus.clause("ORIG-1").violation_type == "unoriginal_content"
    assert [c.id for c in corpus.by_type("account_trading")] == ["TRADE-1", "TRADE-2", "TRADE-3"]
    assert load_corpus(DEFAULT_CORPUS_PATH) == corpus
    assert load_corpus(str(DEFAULT_CORPUS_PATH)) == corpus


def test_packaged_ladders_are_proportionate() -> None:
    """Policy design checks the loader does not enforce: permanent bans only for high/critical
    clauses; trading and circumvention start at suspension; low-effort selling starts at a warning."""
    corpus = load_corpus()
    for c in corpus.clauses:
        if "permanent_ban" in c.ladder:
            assert c.severity in ("high", "critical"), c.id
        if c.violation_type in ("account_trading", "enforcement_circumvention"):
            assert c.ladder[0] == "suspension", c.id
        if c.violation_type == "low_effort_selling":
            assert c.ladder[0] == "warning", c.id
        assert c.examples and c.remediation and c.text


def test_clause_lookup_errors_and_step_for() -> None:
    corpus = load_corpus()
    with pytest.raises(KeyError, match="NOPE-1"):
        corpus.clause("NOPE-1")
    with pytest.raises(ValueError, match="spam"):
        corpus.by_type("spam")
    orig1 = corpus.clause("ORIG-1")
    assert orig1.ladder == ("warning", "traffic_limit", "suspension")
    assert [orig1.step_for(n) for n in (1, 2, 3, 7)] == ["warning", "traffic_limit", "suspension", "suspension"]
    with pytest.raises(ValueError):
        orig1.step_for(0)


def test_constants() -> None:
    assert ENFORCEMENT_STEPS == ("warning", "traffic_limit", "suspension", "permanent_ban")
    assert SEVERITIES == ("low", "medium", "high", "critical")
    assert VIOLATION_TYPES[0] == "unoriginal_content" and VIOLATION_TYPES[-1] == "misleading_claims"
    assert len(VIOLATION_TYPES) == 9


# --------------------------------------------------------------------------- validation, one rule each

def test_base_fixture_is_valid(tmp_path: Path) -> None:
    corpus = load_corpus(_write(tmp_path, BASE))
    assert [c.id for c in corpus.clauses] == ["ORIG-1"] + [f"OTHER-{i}" for i in range(1, 9)]
    assert corpus.clause("OTHER-3").exceptions == ("family phone",)
    assert corpus.clause("OTHER-3").section_title == "Everything else"


def test_missing_clause_field(tmp_path: Path) -> None:
    text = _replace_once(BASE, "        remediation: Film your own videos.\n", "")
    _expect_error(tmp_path, text, "clause ORIG-1", "missing", "remediation")


def test_unknown_clause_field(tmp_path: Path) -> None:
    text = _replace_once(BASE, "        remediation: Film your own videos.\n",
                         "        remediation: Film your own videos.\n        notes: internal\n")
    _expect_error(tmp_path, text, "clause ORIG-1", "unknown", "notes")


def test_missing_top_level_field(tmp_path: Path) -> None:
    text = _replace_once(BASE, 'effective_date: "2026-01-01"\n', "")
    _expect_error(tmp_path, text, "effective_date", "missing")


def test_duplicate_clause_id(tmp_path: Path) -> None:
    text = _replace_once(BASE, "{id: OTHER-5,", "{id: OTHER-4,")
    _expect_error(tmp_path, text, "clause OTHER-4", "duplicate")


def test_id_not_prefixed_by_section(tmp_path: Path) -> None:
    text = _replace_once(BASE, "{id: OTHER-2,", "{id: ORIG-2,")
    _expect_error(tmp_path, text, "clause ORIG-2", "OTHER")


def test_unknown_violation_type(tmp_path: Path) -> None:
    text = _replace_once(BASE, "violation_type: matrix_accounts", "violation_type: spam_accounts")
    _expect_error(tmp_path, text, "clause OTHER-3", "spam_accounts")


def test_unknown_severity(tmp_path: Path) -> None:
    text = _replace_once(BASE, "violation_type: low_effort_selling, severity: low",
                         "violation_type: low_effort_selling, severity: minor")
    _expect_error(tmp_path, text, "clause OTHER-2", "minor")


def test_unknown_ladder_step(tmp_path: Path) -> None:
    text = _replace_once(BASE, "ladder: [traffic_limit], remediation: Stop buying.",
                         "ladder: [shadow_ban], remediation: Stop buying.")
    _expect_error(tmp_path, text, "clause OTHER-4", "shadow_ban")


def test_ladder_out_of_order(tmp_path: Path) -> None:
    text = _replace_once(BASE, "ladder: [traffic_limit, suspension], remediation: Close extras.",
                         "ladder: [suspension, traffic_limit], remediation: Close extras.")
    _expect_error(tmp_path, text, "clause OTHER-3", "order")


def test_ladder_repeated_step(tmp_path: Path) -> None:
    # A repeated step is not an escalation either: the second offence would be no harsher.
    text = _replace_once(BASE, "ladder: [warning, traffic_limit], remediation: Correct it.",
                         "ladder: [warning, warning], remediation: Correct it.")
    _expect_error(tmp_path, text, "clause OTHER-8", "order")


def test_empty_ladder(tmp_path: Path) -> None:
    text = _replace_once(BASE, "ladder: [suspension], remediation: Verify.", "ladder: [], remediation: Verify.")
    _expect_error(tmp_path, text, "clause OTHER-5", "ladder")


def test_empty_text(tmp_path: Path) -> None:
    text = _replace_once(BASE, "text: No account sales.,", "text: '   ',")
    _expect_error(tmp_path, text, "clause OTHER-6", "text", "empty")


def test_empty_remediation(tmp_path: Path) -> None:
    text = _replace_once(BASE, "remediation: Appeal instead.}", "remediation: ''}")
    _expect_error(tmp_path, text, "clause OTHER-7", "remediation", "empty")


def test_violation_type_without_clause(tmp_path: Path) -> None:
    line = [ln for ln in BASE.splitlines(keepends=True) if "{id: OTHER-8," in ln][0]
    text = _replace_once(BASE, line, "")
    _expect_error(tmp_path, text, "misleading_claims", "no clause")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    # yaml.safe_load would silently keep the second `text:`; the loader must refuse.
    text = _replace_once(BASE, "        text: Do not repost other people's videos.\n",
                         "        text: Do not repost other people's videos.\n        text: Second wording.\n")
    _expect_error(tmp_path, text, "duplicate key", "text")


def test_unquoted_numeric_version(tmp_path: Path) -> None:
    # `version: 2026.11` parses as a float; 2026.10 would then read 2026.1 -- must be a quoted string.
    text = _replace_once(BASE, 'version: "1.0"', "version: 1.10")
    _expect_error(tmp_path, text, "version", "string")


# --------------------------------------------------------------------------- chunks

def _two_clause_corpus() -> PolicyCorpus:
    return PolicyCorpus(
        policy_set="p", version="1", effective_date="2026-01-01",
        clauses=(
            Clause(id="A-1", section_id="A", section_title="Sec A", title="Reposting videos",
                   violation_type="unoriginal_content", severity="medium",
                   text="Only post your own videos.",
                   examples=("Re-uploading a trending clip", "Cropping a watermark."),
                   exceptions=("Licensed reposts with credit", "Brand footage"),
                   ladder=("warning", "suspension"), remediation="Film your own."),
            Clause(id="B-1", section_id="B", section_title="Sec B", title="Fake discounts",
                   violation_type="misleading_claims", severity="low",
                   text="Prices must be real. Timers must not restart.",
                   examples=("A timer that resets",), exceptions=(),
                   ladder=("warning",), remediation="Fix the price."),
        ),
    )


def test_chunks_columns_rows_and_text() -> None:
    df = chunks(_two_clause_corpus())
    expected = pd.DataFrame(
        [
            ("A-1", "A-1", "unoriginal_content", "medium", "Reposting videos",
             "Reposting videos. Only post your own videos. Examples: Re-uploading a trending clip; "
             "Cropping a watermark. Exceptions: Licensed reposts with credit; Brand footage."),
            ("B-1", "B-1", "misleading_claims", "low", "Fake discounts",
             "Fake discounts. Prices must be real. Timers must not restart. Examples: A timer that resets."),
        ],
        columns=["chunk_id", "clause_id", "violation_type", "severity", "title", "text"],
    )
    pd.testing.assert_frame_equal(df, expected)


def test_packaged_chunks_one_per_clause_in_order() -> None:
    corpus = load_corpus()
    df = chunks(corpus)
    assert list(df["chunk_id"]) == [c.id for c in corpus.clauses]
    assert (df["chunk_id"] == df["clause_id"]).all()
    first = corpus.clauses[0]
    assert df.loc[0, "text"].startswith(f"{first.title}. {first.text} Examples: ")


# --------------------------------------------------------------------------- hash

def test_corpus_hash_stable_and_sensitive(tmp_path: Path) -> None:
    h1 = corpus_hash(load_corpus())
    h2 = corpus_hash(load_corpus())
    assert h1 == h2
    assert re.fullmatch(r"[0-9a-f]{64}", h1)

    original = DEFAULT_CORPUS_PATH.read_text(encoding="utf-8")
    # One word of one clause's text (ORIG-1) changes -> a different hash.
    sentence = "Publish only videos that you filmed yourself or that you have the right to publish."
    changed = _replace_once(original, sentence, sentence.replace("filmed", "recorded"))
    assert load_corpus(_write(tmp_path, changed)).clause("ORIG-1").text.startswith("Publish only videos that you recorded")
    assert corpus_hash(load_corpus(_write(tmp_path, changed))) != h1
    # Re-wrapping a folded paragraph changes no word -> the same hash.
    rewrapped = _replace_once(original, sentence, sentence.replace(" or that ", " or that\n          "))
    assert corpus_hash(load_corpus(_write(tmp_path, rewrapped))) == h1


# --------------------------------------------------------------------------- retrieval labels

def test_retrieval_labels_cite_existing_clauses_of_the_right_type() -> None:
    corpus = load_corpus()
    items = yaml.safe_load(LABELS.read_text(encoding="utf-8"))["items"]
    assert 70 <= len(items) <= 90
    ids = [it["id"] for it in items]
    assert len(ids) == len(set(ids))
    per_type = Counter(it["violation_type"] for it in items)
    assert set(per_type) == set(VIOLATION_TYPES)
    assert min(per_type.values()) >= 6
    for it in items:
        assert set(it) == {"id", "query", "relevant", "violation_type"}, it["id"]
        assert it["query"].strip() and it["relevant"], it["id"]
        for cid in it["relevant"]:
            assert corpus.clause(cid).violation_type == it["violation_type"], (it["id"], cid)
