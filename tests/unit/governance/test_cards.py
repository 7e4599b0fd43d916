"""Governance cards: every section present, evidence values formatted, hostile text rendered inert."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from libs.governance import agent
from libs.governance.cards import (CREATOR_TEXT_HEADING, card_filename, card_html, card_markdown, format_value,
                                   index_html, index_row, md_escape, md_fence)
from libs.governance.corpus import Clause, PolicyCorpus

CORPUS = PolicyCorpus("test-policy", "9.9", "2026-11-01", (
    Clause("ORIG-1", "ORIG", "Original content", "Re-uploading another creator's video", "unoriginal_content",
           "medium", "Publish only videos you filmed yourself.", ("Reposting a demo",), (),
           ("warning", "traffic_limit", "suspension"), "Delete reposted videos and film your own."),
    Clause("LOW-1", "LOW", "Effort", "Static slideshows", "low_effort_selling", "low", "Show the product.",
           ("Slideshow",), (), ("warning", "traffic_limit"), "Film a demonstration."),
))

HOSTILE = (
    "<script>alert('x')</script>",
    "| col | injected |",
    "````` five backticks ```\n# Heading\n```",
    "[click here](http://evil.example/login) **now** _please_",
)

EVIDENCE = (
    {"evidence_id": "E1", "source": "quality_model", "name": "p_piracy", "value": 0.91342, "reference": 0.5,
     "detail": "piracy model score 0.91 at threshold 0.50"},
    {"evidence_id": "E2", "source": "copies", "name": "copied_video_share", "value": 1234.5, "reference": None,
     # Platform text with markup characters must not break the table either.
     "detail": "24 | 32 videos <copied> from *others*"},
    {"evidence_id": "E3", "source": "signal", "name": "audio_reuse_share", "value": 12.0, "reference": 0.0123,
     "detail": "12 reused tracks"},
)


class Index:
    def search(self, query: str, k: int = 3, mode: str = "hybrid"):
        return [SimpleNamespace(clause_id="ORIG-1", rank=1, score=0.9)]


def explanation(titles: tuple[str, ...] = HOSTILE, rejection: str | None = None) -> agent.Explanation:
    case = agent.Case("cr<7>|x", "US", EVIDENCE,
                      ({"action": "strike", "reason": "copyright", "violation_type": "unoriginal_content"},), titles)
    x = agent.explain(case, Index(), CORPUS)
    return agent.Explanation(x.case, x.decision, x.retrieved, rejection, x.latency_ms)


def render_md(**kw) -> str:
    return card_markdown(explanation(**kw), CORPUS, policy_version="9.9", generated_for_date="2026-11-20")


def render_html(**kw) -> str:
    return card_html(explanation(**kw), CORPUS, policy_version="9.9", generated_for_date="2026-11-20")


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (None, "n/a"), (float("nan"), "n/a"), (12.0, "12"), (1234.5, "1,234.50"), (0.91342, "0.913"),
    (0.5, "0.5"), (0.0123, "0.0123"), (3, "3"), (15000, "15,000"),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_md_escape_and_fence():
    assert md_escape("a|b") == r"a\|b"
    assert md_escape("<b>*x*_y_`z`[l](u)") == r"\<b\>\*x\*\_y\_\`z\`\[l\](u)"
    assert md_escape("line1\nline2") == "line1<br>line2"
    assert md_escape("back\\slash") == "back\\\\slash"
    assert md_fence("no ticks") == "```"
    assert md_fence("a ``` b ````` c") == "``````"


# ------------------------------------------------------------------------------------------------
# Markdown card
# ------------------------------------------------------------------------------------------------

def test_markdown_card_sections_and_values():
    md = render_md()
    for heading in ("# Governance card: creator", "## Violations", "## Evidence", "## Message to the creator",
                    "## Cited policy clauses", f"## {CREATOR_TEXT_HEADING}"):
        assert heading in md
    assert r"| cr\<7\>\|x | US | enforce | traffic limit |" in md
    # 1 prior copyright strike -> ORIG-1 ladder[1] = traffic_limit.
    assert ("| unoriginal\\_content | ORIG-1 (Re-uploading another creator's video) | medium | traffic limit | 1 | "
            "E1, E2, E3 |") in md
    assert "| E1 | quality\\_model | p\\_piracy | 0.913 | 0.5 | piracy model score 0.91 at threshold 0.50 |" in md
    assert "| E2 | copies | copied\\_video\\_share | 1,234.50 | n/a | 24 \\| 32 videos \\<copied\\> from \\*others\\* |" in md
    assert "| E3 | signal | audio\\_reuse\\_share | 12 | 0.0123 | 12 reused tracks |" in md
    assert "### ORIG-1: Re-uploading another creator's video" in md
    assert "Publish only videos you filmed yourself." in md and "Delete reposted videos and film your own." in md
    assert "LOW-1" not in md                              # not cited -> not shown
    assert "Policy test-policy version 9.9 · generated for 2026-11-20 · decided by grounded\\_composer" in md


def test_markdown_tables_keep_their_column_count():
    md = render_md(rejection="model cited | POLICY-X | <b>")
    for line in md.splitlines():
        if line.startswith("| E"):
            assert unescaped_pipes(line) == 7, line
        if line.startswith("| unoriginal"):
            assert unescaped_pipes(line) == 7, line
    assert "model cited \\| POLICY-X \\| \\<b\\>" in md


def test_markdown_creator_text_is_fenced_data():
    md = render_md()
    head, tail = md.split(f"## {CREATOR_TEXT_HEADING}")
    for t in ("<script>", "| col |", "[click here](", "# Heading", "**now**"):
        assert t not in head                             # hostile text only below the heading
    lines = tail.strip("\n").split("\n")
    fence = "`" * 6                                       # the longest backtick run inside is 5
    assert lines[-1] == fence
    opening = lines.index(fence + "text")
    # Verbatim inside the fence; the newline inside a title is shown as a marker (one title per line).
    assert lines[opening + 1:-1] == [HOSTILE[0], HOSTILE[1], "````` five backticks ``` \u23ce # Heading \u23ce ```",
                                     HOSTILE[3]]


def test_markdown_card_renders_without_live_markup():
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(render_md())
    assert "<script>" not in rendered and "<a " not in rendered and "<strong>" not in rendered
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in rendered or "&lt;script&gt;alert(&#x27;x&#x27;)" in rendered
    assert rendered.count("<pre>") == 1                   # the creator text block, nothing escaped out of it
    assert rendered.count("<table>") == 3                 # header, violations, evidence: no injected table


def test_markdown_card_without_violations_or_creator_text():
    case = agent.Case("cr_9", None, (EVIDENCE[2],), (), ())
    x = agent.explain(case, Index(), CORPUS)
    md = card_markdown(x, CORPUS, policy_version="9.9", generated_for_date="2026-11-20")
    assert "No policy violation was established." in md and "No clause cited." in md
    assert "| cr\\_9 | n/a | no\\_violation | none |" in md
    assert md.rstrip().endswith("(nothing)")


# ------------------------------------------------------------------------------------------------
# HTML card and index
# ------------------------------------------------------------------------------------------------

class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self._href = dict(attrs)["href"]
        self._in_pre = self._in_pre or tag == "pre"

    def handle_endtag(self, tag):
        self._in_pre = self._in_pre and tag != "pre"

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None
        if self._in_pre:
            self.pre.append(data)


def parse(page: str) -> Tags:
    p = Tags()
    p.feed(page)
    p.close()
    return p


def test_html_card_escapes_everything_and_has_all_sections():
    page = render_html(rejection="<img src=x onerror=alert(1)>")
    p = parse(page)
    assert "script" not in p.tags and "img" not in p.tags and "a" not in p.tags
    assert set(p.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table", "tr",
                           "th", "td", "br", "pre"}
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # The creator text is inside the one <pre>, verbatim once unescaped.
    assert "".join(p.pre).split("\n") == [HOSTILE[0], HOSTILE[1], "````` five backticks ``` \u23ce # Heading \u23ce ```",
                                          HOSTILE[3]]
    for text in ("Violations", "Evidence", "Message to the creator", "Cited policy clauses",
                 "What the creator wrote (data, not instructions)", "Publish only videos you filmed yourself."):
        assert text in page
    assert "<td>cr&lt;7&gt;|x</td><td>US</td><td>enforce</td><td>traffic limit</td>" in page
    assert ('<td>E2</td><td>copies</td><td>copied_video_share</td><td class="num">1,234.50</td>'
            '<td class="num">n/a</td><td>24 | 32 videos &lt;copied&gt; from *others*</td>') in page
    assert '<td class="num">0.913</td><td class="num">0.5</td>' in page


def test_card_filename():
    assert card_filename("cr_001") == "cr_001.html"
    assert card_filename("../etc/x") == "..%2Fetc%2Fx.html"
    assert "/" not in card_filename("a/b") and "<" not in card_filename("<a>")


def test_index_links_every_card():
    rows = [index_row(explanation(titles=())),
            {"creator_id": "cr_001", "market": "GB", "status": "review", "recommended_step": None,
             "violation_types": ["low_effort_selling"]},
            {"creator_id": "a/b\"><script>x</script>"}]
    page = index_html(rows, policy_version="9.9", generated_for_date="2026-11-20")
    p = parse(page)
    assert "script" not in p.tags
    # Each link's href is the card file name, URL-encoded once more; its text is the raw id.
    assert p.links == [("cr%253C7%253E%257Cx.html", "cr<7>|x"), ("cr_001.html", "cr_001"),
                       ("a%252Fb%2522%253E%253Cscript%253Ex%253C%252Fscript%253E.html", 'a/b"><script>x</script>')]
    from urllib.parse import unquote
    assert [unquote(h) for h, _ in p.links] == [card_filename(c) for c in ("cr<7>|x", "cr_001",
                                                                          'a/b"><script>x</script>')]
    assert "<td>GB</td><td>review</td><td>none (human review)</td><td>low_effort_selling</td>" in page
    assert "3 card(s)." in page and "policy version 9.9" in page


def test_index_rejects_a_row_without_creator_id():
    with pytest.raises(ValueError, match="creator_id"):
        index_html([{"market": "US"}])


def test_violation_without_a_retrievable_clause_goes_to_review():
    class WrongTypeIndex:
        def search(self, query: str, k: int = 3, mode: str = "hybrid"):
            return [SimpleNamespace(clause_id="LOW-1", rank=1, score=0.9)]   # another type: not citable

    x = agent.explain(agent.Case("cr_5", "DE", EVIDENCE, (), ()), WrongTypeIndex(), CORPUS)
    md = card_markdown(x, CORPUS, policy_version="9.9", generated_for_date="2026-11-20")
    assert "| cr\\_5 | DE | review | none (human review) |" in md
    assert "| unoriginal\\_content | none retrieved (human review) | n/a | none (human review) | 0 | E1, E2, E3 |" in md
    assert "No clause cited." in md and "LOW-1" not in md
    page = index_html([index_row(x), {"creator_id": "cr_6", "status": "no_violation", "recommended_step": None}])
    assert "<td>review</td><td>none (human review)</td><td>unoriginal_content</td>" in page
    assert "<td>no_violation</td><td>none</td><td></td>" in page
