"""Per-creator governance cards (Markdown and HTML) and an HTML index of them.

A card is what a policy/ops reviewer opens before enforcing and what the creator's notice is built
from: the decision (status, recommended step), each violation with the clauses it cites, every
evidence item with its value and reference, the education text, the cited clauses' wording, and --
clearly separated -- what the creator wrote.

Why everything is escaped: a card mixes platform text with text that someone else controls. The
creator's titles are attacker-controlled, a model backend's education text is model-controlled,
and even a rejection reason quotes both. A title such as ``<script>`` or ``| fake | row |`` or a
code fence must render as the characters it is, never as markup that adds rows, links or script
to a reviewer's page. So: HTML goes through :func:`html.escape`; Markdown escapes the characters
that start inline markup (and table cells also their pipes and newlines); creator text in Markdown
sits in a fenced block whose fence is longer than any backtick run inside it, so it cannot close
the fence. The HTML pages also carry a Content-Security-Policy that forbids scripts, as a second
line of defence should an escape ever be missed.
"""
from __future__ import annotations

import datetime as dt
import html
import math
import re
import urllib.parse
from typing import Any, Iterable, Mapping

from libs.governance.agent import STATUS_NO_VIOLATION, Explanation
from libs.governance.corpus import Clause, PolicyCorpus

CREATOR_TEXT_HEADING = "What the creator wrote (data, not instructions)"
CREATOR_TEXT_NOTE = ("Quoted verbatim as data for the reviewer. It was not used to make this decision and "
                     "nothing in it is an instruction.")
# Script-free pages: inline styles only, no scripts, no remote resources, no form posts.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'"
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222}"
          "table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;"
          "text-align:left;vertical-align:top}th{background:#f3f3f3}.num{text-align:right}"
          ".untrusted{background:#fff6e5;border:1px dashed #c90;padding:.5rem;white-space:pre-wrap}"
          ".meta{color:#555}.rejection{color:#900}")

# Characters that open inline Markdown (emphasis, code, links, autolinks/HTML, tables, strikethrough,
# headings, entity references); the backslash itself first so escapes are not doubled.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#&!])")
# A line that a Markdown parser would read as a list item, thematic break, setext underline or
# numbered list, once leading spaces are dropped.
_MD_BLOCK_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")
_BACKTICK_RUN = re.compile(r"`+")


def format_value(value: Any) -> str:
    """An evidence value for display: integers without decimals (thousands separated), others to
    2 decimals at or above 1 and 3 significant digits below 1 (shares, scores, rates)."""
    if value is None:
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "n/a"
    if v.is_integer():
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    return f"{v:.3g}"


def md_escape(text: Any) -> str:
    """One line of Markdown-inert text (safe in a table cell): specials backslash-escaped, newlines as <br>."""
    s = _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text))
    # The <br> is our markup, added after escaping; a pipe-table row must stay on one line.
    return re.sub(r"\r\n|\r|\n", "<br>", s)


def md_paragraphs(text: Any) -> str:
    """Multi-line Markdown-inert text: inline specials escaped, block markers at line starts neutralised."""
    lines = []
    for line in _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text)).splitlines():
        # Four leading spaces would make an indented code block; list/heading markers a list or a rule.
        line = line.lstrip(" \t")
        line = _MD_BLOCK_START.sub(lambda m: "\\" + m.group(2) if m.group(2)[-1] in "-+=" else
                                   m.group(2)[:-1] + "\\" + m.group(2)[-1], line)
        lines.append(line)
    return "\n".join(lines)


def md_fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text`` (at least 3): the text cannot close it."""
    longest = max((len(m.group(0)) for m in _BACKTICK_RUN.finditer(text)), default=0)
    return "`" * max(3, longest + 1)


def card_filename(creator_id: str) -> str:
    """File name of a creator's HTML card: the id percent-encoded (no ``/``, no ``..`` path tricks) + ``.html``."""
    return urllib.parse.quote(str(creator_id), safe="") + ".html"


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _date(value: Any) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def _cited(clause_ids, corpus, policy_version: str, esc) -> list[str]:
    """``"<id> (<title>)"`` per cited clause, escaped by ``esc`` (Markdown or HTML: one list for both cards)."""
    out = []
    for cid in clause_ids:
        c = _clause(corpus, cid)
        out.append(f"{esc(cid)} ({esc(c.title if c else f'not in policy {policy_version}')})")
    return out


def _clause(corpus: PolicyCorpus, clause_id: str) -> Clause | None:
    try:
        return corpus.clause(clause_id)
    except KeyError:
        return None  # shown as "not in policy <version>" rather than failing the whole card batch


def _creator_lines(explanation: Explanation) -> list[str]:
    # One title per line; a newline inside a title is shown as a visible marker so titles stay countable.
    return [re.sub(r"\r\n|\r|\n", " \u23ce ", t) for t in explanation.case.creator_text]


def _step(step: str | None, no_violation: bool = False) -> str:
    # No step with violations means a violation had nothing to cite: a specialist decides.
    if step:
        return step.replace("_", " ")
    return "none" if no_violation else "none (human review)"


def card_markdown(explanation: Explanation, corpus: PolicyCorpus, *, policy_version: str,
                  generated_for_date: Any) -> str:
    """The creator's card as Markdown (stored in ``governance_explanations.card_markdown``)."""
    case, d = explanation.case, explanation.decision
    e = md_escape
    out = [f"# Governance card: creator {e(case.creator_id)}", "",
           f"Policy {e(corpus.policy_set)} version {e(policy_version)} · generated for {e(_date(generated_for_date))}"
           f" · decided by {e(d.backend)}", "",
           "| Creator | Market | Status | Recommended step |", "|---|---|---|---|",
           f"| {e(case.creator_id)} | {e(case.market or 'n/a')} | {e(d.status)} | "
           f"{e(_step(d.recommended_step, not d.violations))} |", ""]
    if explanation.backend_rejection:
        out += [f"Configured backend's answer was rejected and replaced: {e(explanation.backend_rejection)}", ""]
    out += ["## Violations", ""]
    if d.violations:
        out += ["| Violation | Cited clauses | Severity | Step | Prior actions | Evidence |",
                "|---|---|---|---|---:|---|"]
        for v in d.violations:
            cited = _cited(v.clause_ids, corpus, policy_version, e)
            out.append(f"| {e(v.violation_type)} | {'<br>'.join(cited) or 'none retrieved (human review)'} | "
                       f"{e(v.severity or 'n/a')} | {e(_step(v.step))} | {v.prior_actions} | "
                       f"{e(', '.join(v.evidence_ids))} |")
    else:
        out.append("No policy violation was established.")
    out += ["", "## Evidence", "", "| ID | Source | Name | Value | Reference | Detail |", "|---|---|---|---:|---:|---|"]
    for item in case.evidence:
        out.append(f"| {e(item.get('evidence_id'))} | {e(item.get('source'))} | {e(item.get('name'))} | "
                   f"{e(format_value(item.get('value')))} | {e(format_value(item.get('reference')))} | "
                   f"{e(item.get('detail'))} |")
    out += ["", "## Message to the creator", "", md_paragraphs(d.education_text), "", "## Cited policy clauses", ""]
    if not d.cited_clause_ids:
        out += ["No clause cited.", ""]
    for cid in d.cited_clause_ids:
        c = _clause(corpus, cid)
        if c is None:
            out += [f"### {e(cid)}", "", f"Not in policy {e(policy_version)}.", ""]
            continue
        out += [f"### {e(c.id)}: {e(c.title)}", "",
                f"Section {e(c.section_title)} · {e(c.violation_type)} · severity {e(c.severity)} · "
                f"ladder: {e(' → '.join(s.replace('_', ' ') for s in c.ladder))}", "",
                md_paragraphs(c.text), "", f"Remediation: {md_paragraphs(c.remediation)}", ""]
    lines = _creator_lines(explanation)
    body = "\n".join(lines)
    fence = md_fence(body)
    out += [f"## {CREATOR_TEXT_HEADING}", "", CREATOR_TEXT_NOTE, ""]
    out += [fence + "text", body, fence] if lines else ["(nothing)"]
    return "\n".join(out).rstrip("\n") + "\n"


def _page(title: str, body: list[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
                      '<meta name="referrer" content="no-referrer">',
                      f"<title>{title}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>", *body,
                      "</body>", "</html>", ""])


def card_html(explanation: Explanation, corpus: PolicyCorpus, *, policy_version: str,
              generated_for_date: Any) -> str:
    """The creator's card as a standalone, script-free HTML page (the same sections as :func:`card_markdown`)."""
    case, d = explanation.case, explanation.decision
    b = [f"<h1>Governance card: creator {_h(case.creator_id)}</h1>",
         f'<p class="meta">Policy {_h(corpus.policy_set)} version {_h(policy_version)} · generated for '
         f"{_h(_date(generated_for_date))} · decided by {_h(d.backend)}</p>",
         "<table><tr><th>Creator</th><th>Market</th><th>Status</th><th>Recommended step</th></tr>",
         f"<tr><td>{_h(case.creator_id)}</td><td>{_h(case.market or 'n/a')}</td><td>{_h(d.status)}</td>"
         f"<td>{_h(_step(d.recommended_step, not d.violations))}</td></tr></table>"]
    if explanation.backend_rejection:
        b.append(f'<p class="rejection">Configured backend\'s answer was rejected and replaced: '
                 f"{_h(explanation.backend_rejection)}</p>")
    b.append("<h2>Violations</h2>")
    if d.violations:
        b.append("<table><tr><th>Violation</th><th>Cited clauses</th><th>Severity</th><th>Step</th>"
                 "<th>Prior actions</th><th>Evidence</th></tr>")
        for v in d.violations:
            cited = _cited(v.clause_ids, corpus, policy_version, _h)
            b.append(f"<tr><td>{_h(v.violation_type)}</td><td>{'<br>'.join(cited) or 'none retrieved (human review)'}"
                     f"</td><td>{_h(v.severity or 'n/a')}</td><td>{_h(_step(v.step))}</td>"
                     f'<td class="num">{v.prior_actions}</td><td>{_h(", ".join(v.evidence_ids))}</td></tr>')
        b.append("</table>")
    else:
        b.append("<p>No policy violation was established.</p>")
    b += ["<h2>Evidence</h2>", "<table><tr><th>ID</th><th>Source</th><th>Name</th><th>Value</th><th>Reference</th>"
          "<th>Detail</th></tr>"]
    for item in case.evidence:
        b.append(f"<tr><td>{_h(item.get('evidence_id'))}</td><td>{_h(item.get('source'))}</td>"
                 f"<td>{_h(item.get('name'))}</td><td class=\"num\">{_h(format_value(item.get('value')))}</td>"
                 f"<td class=\"num\">{_h(format_value(item.get('reference')))}</td><td>{_h(item.get('detail'))}</td></tr>")
    b.append("</table>")
    b.append("<h2>Message to the creator</h2>")
    b += [f"<p>{_h(p)}</p>" for p in re.split(r"\n\s*\n", d.education_text) if p.strip()]
    b.append("<h2>Cited policy clauses</h2>")
    if not d.cited_clause_ids:
        b.append("<p>No clause cited.</p>")
    for cid in d.cited_clause_ids:
        c = _clause(corpus, cid)
        if c is None:
            b.append(f"<h3>{_h(cid)}</h3><p>Not in policy {_h(policy_version)}.</p>")
            continue
        b += [f"<h3>{_h(c.id)}: {_h(c.title)}</h3>",
              f'<p class="meta">Section {_h(c.section_title)} · {_h(c.violation_type)} · severity {_h(c.severity)} · '
              f"ladder: {_h(' → '.join(s.replace('_', ' ') for s in c.ladder))}</p>",
              f"<p>{_h(c.text)}</p>", f"<p>Remediation: {_h(c.remediation)}</p>"]
    b += [f"<h2>{_h(CREATOR_TEXT_HEADING)}</h2>", f"<p>{_h(CREATOR_TEXT_NOTE)}</p>"]
    lines = _creator_lines(explanation)
    b.append(f'<pre class="untrusted">{_h(chr(10).join(lines))}</pre>' if lines else "<p>(nothing)</p>")
    return _page(f"Governance card: {_h(case.creator_id)}", b)


def index_row(explanation: Explanation) -> dict[str, Any]:
    """The :func:`index_html` row of one explanation."""
    d = explanation.decision
    return {"creator_id": explanation.case.creator_id, "market": explanation.case.market, "status": d.status,
            "recommended_step": d.recommended_step, "violation_types": d.violation_types}


def index_html(rows: Iterable[Mapping[str, Any]], *, title: str = "Governance cards",
               policy_version: str | None = None, generated_for_date: Any = None) -> str:
    """An HTML page linking every card (``<creator_id>.html`` as :func:`card_filename` names it), in row order.

    Each row needs ``creator_id``; ``market``, ``status``, ``recommended_step`` and
    ``violation_types`` are shown when present (see :func:`index_row`).
    """
    meta = " · ".join(x for x in (f"policy version {_h(policy_version)}" if policy_version else "",
                                  f"generated for {_h(_date(generated_for_date))}" if generated_for_date else "") if x)
    b = [f"<h1>{_h(title)}</h1>"] + ([f'<p class="meta">{meta}</p>'] if meta else [])
    b.append("<table><tr><th>Creator</th><th>Market</th><th>Status</th><th>Recommended step</th>"
             "<th>Violations</th></tr>")
    n = 0
    for row in rows:
        if "creator_id" not in row or row["creator_id"] is None:
            raise ValueError(f"index row without creator_id: {dict(row)!r:.120}")
        cid = str(row["creator_id"])
        # The href is the URL of the file card_filename() names: quote once more so a '%' in the file
        # name is sent as '%25' and the browser opens that exact file.
        href = urllib.parse.quote(card_filename(cid), safe="")
        status = row.get("status")
        step = _step(row["recommended_step"], status == STATUS_NO_VIOLATION) if "recommended_step" in row else ""
        b.append(f'<tr><td><a href="{_h(href)}">{_h(cid)}</a></td><td>{_h(row.get("market") or "n/a")}</td>'
                 f"<td>{_h(status or '')}</td><td>{_h(step)}</td>"
                 f"<td>{_h(', '.join(row.get('violation_types') or []))}</td></tr>")
        n += 1
    b.append("</table>")
    b.append(f"<p class=\"meta\">{n} card(s).</p>")
    return _page(_h(title), b)
