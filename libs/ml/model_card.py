"""One model card for every trained model version: what it was trained on, how it scores overall,
by market and by abuse type / task, how unevenly it treats markets, what it was compared with,
and whether it became ``champion`` and why.

Why one shared builder: the three trainers (creator quality, graph risk, ecosystem value) used to
write their own Markdown, each with a different subset of facts -- one had no card at all, none
had the promotion decision, and "fairness" was a sentence. A reviewer approving a model must find
the same sections in the same order whichever job produced it, so the card is a
:class:`ModelCard` value filled by each job and rendered here.

Why the card is written *after* the promotion rule ran: the card describes the version **and**
the registry's decision about it (:class:`Promotion`, read back from the tags that
:func:`libs.ml.registry.promote_if_better` wrote). A card written before the decision would show
a reviewer metrics without the one conclusion they must check.

Where it goes (:func:`log_card`): ``model_card.md`` and ``model_card.json`` in the source run's
artifacts, and the Markdown as the registered model version's description, which the MLflow UI
shows on the version page. The registry's description column holds 5,000 characters
(``String(5000)`` in MLflow's SQL schema; Postgres and MySQL enforce it, sqlite does not), so a
longer card is stored there in its compact form -- headline, promotion, overall metrics, AUC and
promotion metric by market, the fairness summaries -- with a pointer to the full artifact.

Fairness here means *between markets* (the only protected grouping the platform has labels for):

* **AUC spread**: per abuse type / task, max - min of the per-market ROC AUC over the markets
  where it is defined (both classes present). A wide spread means the model ranks well in some
  markets and poorly in others.
* **Rates at the operating point**: per market, the share of hold-out rows flagged at the decision
  threshold (``score >= threshold``, as enforcement applies it) and the false-positive rate among
  the negatives, with the lowest / highest market FPR and their gap. Uneven FPR means honest
  creators of one market are flagged more often than another's. Negatives are "no standing moderation decision", which includes uncaught bad actors,
  so this FPR is an upper bound -- the card says so.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from libs.ml.registry import TAG_ALIAS, TAG_COMPARED_TO, TAG_DECIDED_AT, TAG_DECISION, TAG_REASON

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"
PLOT_DIR = "plots/markets"            # run-relative artifact folder of the per-market plots
DESCRIPTION_MAX = 5000                # MLflow's model_versions.description column: String(5000)

# Metric columns of binary-classifier cards: keys of libs.ml.metrics.binary_metrics -> headings.
BINARY_METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("recall_at_p80", "recall@80% precision"),
    ("recall_at_p90", "recall@90% precision"), ("recall_at_fpr1", "recall@1% FPR"),
    ("recall_at_fpr5", "recall@5% FPR"))


# --------------------------------------------------------------------------------------------
# The card's parts
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataWindow:
    """Days of input the version was trained and evaluated on: ``first_day..last_day`` inclusive
    (ISO dates), ``lookback_days`` long; ``detail`` says what lies where (features vs labels)."""

    first_day: str
    last_day: str
    lookback_days: int
    detail: str = ""

    def __post_init__(self) -> None:
        first, last = dt.date.fromisoformat(self.first_day), dt.date.fromisoformat(self.last_day)
        # A stated lookback that disagrees with the two dates is a bug in the caller's date maths.
        if (last - first).days + 1 != self.lookback_days:
            raise ValueError(f"data window {self.first_day}..{self.last_day} is {(last - first).days + 1} days, "
                             f"not lookback_days={self.lookback_days}")


@dataclass(frozen=True)
class Positives:
    """Positive labels of one abuse type / task in the training and hold-out rows (None: not a count,
    e.g. a regression task)."""

    train: int | None
    holdout: int | None


@dataclass(frozen=True)
class MarketSpread:
    """Per-market ROC AUC of one task: lowest and highest market and ``spread = highest - lowest``.

    ``spread`` is None when fewer than two markets have a defined AUC (nothing to compare).
    """

    task: str
    spread: float | None
    lowest_market: str | None
    lowest: float | None
    highest_market: str | None
    highest: float | None
    markets_defined: int
    markets_total: int


@dataclass(frozen=True)
class MarketRates:
    """Rows flagged at a threshold in one market (``market == "all"``: every row) and the false
    positives among its negatives; ``fpr`` None without negatives."""

    market: str
    rows: int
    flagged: int
    negatives: int
    false_positives: int
    flag_rate: float
    fpr: float | None


@dataclass(frozen=True)
class OperatingPoint:
    """The decision threshold of one task, how it was chosen (``rule``), and the rates it yields
    overall and per market on the hold-out."""

    task: str
    threshold: float
    rule: str
    overall: MarketRates
    by_market: tuple[MarketRates, ...]

    def fpr_range(self) -> tuple[MarketRates, MarketRates] | None:
        """The markets with the lowest and highest FPR (ties: alphabetically first); None when fewer
        than two markets have negatives -- the FPR disparity a reviewer checks first."""
        rated = sorted((r for r in self.by_market if r.fpr is not None), key=lambda r: (r.fpr, r.market))
        if len(rated) < 2:
            return None
        top = max(r.fpr for r in rated)
        return rated[0], min((r for r in rated if r.fpr == top), key=lambda r: r.market)


@dataclass(frozen=True)
class Promotion:
    """The champion/challenger decision about the version, as tagged by ``promote_if_better``."""

    decision: str                  # promoted | refused | unchanged
    reason: str
    alias: str
    compared_to: str | None        # the champion version compared with; None when there was none
    decided_at: str | None = None

    @classmethod
    def from_registry(cls, client: Any, name: str, version: str | int) -> "Promotion":
        """Read the decision tags of ``name`` v``version``; ValueError if the rule never ran on it."""
        tags = client.get_model_version(name, str(version)).tags
        if TAG_DECISION not in tags:
            raise ValueError(f"{name} v{version} has no '{TAG_DECISION}' tag: run the promotion rule "
                             "(libs.ml.registry.promote_if_better) before writing its card")
        compared = tags.get(TAG_COMPARED_TO)
        return cls(decision=tags[TAG_DECISION], reason=tags.get(TAG_REASON, ""), alias=tags.get(TAG_ALIAS, ""),
                   compared_to=None if compared in (None, "none") else compared, decided_at=tags.get(TAG_DECIDED_AT))


@dataclass(frozen=True)
class ModelCard:
    """Everything a reviewer needs to approve (or not) one registered model version.

    ``metrics``: ``{task: {metric key: value}}`` of this model on the hold-out (``metric_columns``
    picks and names the keys shown); ``by_market``: ``{market: {task: ROC AUC}}``; ``baselines``:
    ``{baseline name: {task: {metric key: value}}}`` on the same hold-out; ``market_scores``:
    ``{model label or baseline name: {market: value}}`` of the promotion metric per market
    (``primary``: the same overall); None everywhere means "undefined" (one class), shown as n/a.
    ``plots``: run-relative artifact paths.
    """

    title: str
    model_name: str
    version: str
    run_id: str
    run_date: str
    window: DataWindow
    labels_note: str
    train_rows: int
    holdout_rows: int
    positives: Mapping[str, Positives]
    hyperparameters: Mapping[str, Any]
    metric_columns: Sequence[tuple[str, str]]
    metrics: Mapping[str, Mapping[str, float | None]]
    by_market: Mapping[str, Mapping[str, float | None]]
    model_label: str = "model"
    baselines: Mapping[str, Mapping[str, Mapping[str, float | None]]] = field(default_factory=dict)
    baseline_notes: Mapping[str, str] = field(default_factory=dict)
    primary_metric: str = "roc_auc"
    primary: Mapping[str, float | None] = field(default_factory=dict)
    market_scores: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    spread: Sequence[MarketSpread] = ()
    operating_points: Sequence[OperatingPoint] = ()
    operating_point_note: str = ""
    plots: Sequence[str] = ()
    promotion: Promotion | None = None
    notes: Sequence[str] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``model_card.json``): nested dataclasses become dicts, tuples lists."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def to_markdown(self, compact: bool = False) -> str:
        """The card as Markdown; ``compact`` drops positives, hyper-parameters, the baseline table,
        per-market rate tables, plots and notes and points to the full artifact (the registry
        description when the full card is too long for it)."""
        return _render(self, compact)


# --------------------------------------------------------------------------------------------
# Fairness computations (numpy)
# --------------------------------------------------------------------------------------------

def market_spread(by_market: Mapping[str, Mapping[str, float | None]],
                  tasks: Sequence[str] | None = None) -> list[MarketSpread]:
    """Per task, the lowest and highest per-market AUC and their difference.

    ``tasks`` defaults to every task named in ``by_market`` (first-seen order). Markets whose AUC is
    None (one class there) are left out and counted in ``markets_total`` only. Ties pick the
    alphabetically first market, so the card is the same on every run.
    """
    if tasks is None:
        tasks = list(dict.fromkeys(t for row in by_market.values() for t in row))
    out = []
    for task in tasks:
        values = sorted((float(v), m) for m, row in by_market.items() if (v := row.get(task)) is not None)
        if any(not math.isfinite(v) for v, _ in values):
            raise ValueError(f"per-market AUC of {task!r} contains NaN or infinity")
        if not values:
            out.append(MarketSpread(task, None, None, None, None, None, 0, len(by_market)))
            continue
        low_v, low_m = values[0]
        high_v = values[-1][0]
        high_m = min(m for v, m in values if v == high_v)
        spread = high_v - low_v if len(values) >= 2 else None
        out.append(MarketSpread(task, spread, low_m, low_v, high_m, high_v, len(values), len(by_market)))
    return out


def _rates(market: str, y: np.ndarray, flagged: np.ndarray) -> MarketRates:
    negatives = int((y == 0).sum())
    false_pos = int((flagged & (y == 0)).sum())
    n = int(y.size)
    return MarketRates(market, n, int(flagged.sum()), negatives, false_pos,
                       float(flagged.sum()) / n if n else 0.0, false_pos / negatives if negatives else None)


def rates_at_threshold(y: np.ndarray, p: np.ndarray, markets: Sequence[str] | np.ndarray,
                       threshold: float) -> tuple[MarketRates, tuple[MarketRates, ...]]:
    """Flag rate and false-positive rate at ``score >= threshold``: overall (market ``"all"``) and per
    market (sorted by name). ``y`` 0/1 labels and ``p`` scores of one task, 1-D, same length."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    g = np.asarray(markets).astype(str)
    if y.ndim != 1 or y.shape != p.shape or g.shape != y.shape:
        raise ValueError(f"labels {y.shape}, scores {p.shape} and markets {g.shape} must be 1-D of one length")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    if not np.isfinite(p).all() or not math.isfinite(threshold):
        raise ValueError("scores and threshold must be finite")
    flagged = p >= threshold           # as enforcement applies it (libs.quality.scores.model_evidence)
    return _rates("all", y, flagged), tuple(_rates(m, y[g == m], flagged[g == m]) for m in sorted(set(g.tolist())))


def top_k_threshold(p: np.ndarray, rate: float) -> float:
    """The score of the ``ceil(rate * N)``-th highest row: flagging ``score >= it`` flags the top
    ``rate`` of rows (more when scores tie there). The operating point of a model without a
    decision threshold: a fixed review budget."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.isfinite(p).all():
        raise ValueError("need at least one finite score")
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    k = max(1, math.ceil(rate * p.size - 1e-9))      # 1e-9: 0.01 * 300 is 3.0000000000000004 in floats
    return float(np.sort(p)[::-1][k - 1])


def operating_point(task: str, y: np.ndarray, p: np.ndarray, markets: Sequence[str] | np.ndarray,
                    threshold: float, rule: str) -> OperatingPoint:
    """:func:`rates_at_threshold` packed with the threshold and the rule that chose it."""
    overall, by_market = rates_at_threshold(y, p, markets, threshold)
    return OperatingPoint(task, float(threshold), rule, overall, by_market)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plot_market_roc(path: str | Path, y: np.ndarray, p: np.ndarray, markets: Sequence[str] | np.ndarray,
                    task: str, weight: np.ndarray | None = None) -> Path:
    """ROC curve of ``task`` per market (one line each, AUC in the legend) plus all markets dashed.

    Rows with a NaN label or weight 0 are left out (unlabelled); a market with one class is named
    in the title instead of drawn.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from libs.platform.plots import saved_axes

    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    w = np.ones_like(y) if weight is None else np.asarray(weight, dtype=np.float64)
    g = np.asarray(markets).astype(str)
    keep = ~np.isnan(y) & (w > 0)
    y, p, w, g = y[keep], p[keep], w[keep], g[keep]
    skipped = []
    with saved_axes(path, figsize=(6.5, 5)) as ax:
        for market in sorted(set(g.tolist())) + ["all markets"]:
            rows = np.ones_like(y, dtype=bool) if market == "all markets" else g == market
            yk, pk, wk = y[rows], p[rows], w[rows]
            if not (0 < yk.sum() < yk.size):
                skipped.append(market)
                continue
            fpr, tpr, _ = roc_curve(yk, pk, sample_weight=wk)
            style = {"color": "black", "linestyle": "--"} if market == "all markets" else {}
            ax.plot(fpr, tpr, label=f"{market} (AUC {roc_auc_score(yk, pk, sample_weight=wk):.3f})", **style)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("recall (true positive rate)")
        ax.set_title(f"ROC by market: {task}" + (f" (one class, not drawn: {', '.join(skipped)})" if skipped else ""),
                     fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7)
    return Path(path)


def plot_market_bars(path: str | Path, by_market: Mapping[str, Mapping[str, float | None]],
                     tasks: Sequence[str], title: str = "ROC AUC by market") -> Path:
    """Grouped bars: per market, one bar per task's AUC (undefined AUCs drawn as no bar), 0.5 dotted."""
    from libs.platform.plots import saved_axes

    markets = sorted(by_market)
    width = 0.8 / max(len(tasks), 1)
    with saved_axes(path, figsize=(max(6.0, 0.9 * len(markets) + 2), 4.5)) as ax:
        xs = np.arange(len(markets))
        for k, task in enumerate(tasks):
            heights = [by_market[m].get(task) for m in markets]
            at = xs + (k - (len(tasks) - 1) / 2) * width
            ax.bar(at, [np.nan if h is None else h for h in heights], width=width, label=task)
            for x, h in zip(at, heights):
                if h is None:                     # one class in that market: say so rather than leave a gap
                    ax.text(x, 0.02, "n/a", ha="center", va="bottom", rotation=90, fontsize=7)
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)      # chance level
        ax.set_xticks(xs)
        ax.set_xticklabels(markets)
        ax.set_ylim(0, 1.15)                      # headroom above AUC 1 for the legend row
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("ROC AUC")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper center", ncol=min(len(tasks), 5), frameon=False)
    return Path(path)


def log_market_plots(client: Any, run_id: str, y: np.ndarray, p: np.ndarray, markets: Sequence[str] | np.ndarray,
                     tasks: Sequence[str], by_market: Mapping[str, Mapping[str, float | None]],
                     weight: np.ndarray | None = None, artifact_dir: str = PLOT_DIR) -> list[str]:
    """Per-market ROC curves (one figure per task) and the per-market AUC bar chart, logged under
    ``artifact_dir`` of ``run_id``; returns their run-relative artifact paths (for the card).

    ``y``/``p`` are ``(N, T)`` in ``tasks`` order (NaN labels allowed: left out); ``by_market`` the
    numbers the card's table shows, so bars and table agree.
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(tasks):
        raise ValueError(f"labels {y.shape} and scores {p.shape} must both be (N, {len(tasks)})")
    with tempfile.TemporaryDirectory(prefix="model-card-") as tmp:
        folder = Path(tmp)
        names = [plot_market_bars(folder / "auc_by_market.png", by_market, tasks).name]
        for k, task in enumerate(tasks):
            names.append(plot_market_roc(folder / f"roc_{_slug(task)}.png", y[:, k], p[:, k], markets, task,
                                         weight).name)
        client.log_artifacts(run_id, str(folder), artifact_dir)
    return [f"{artifact_dir}/{n}" for n in names]


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------

def card_uri(run_id: str) -> str:
    """Where the card's Markdown lives: ``runs:/<run id>/model_card.md``."""
    return f"runs:/{run_id}/{CARD_MD}"


def registry_description(card: ModelCard, limit: int = DESCRIPTION_MAX) -> str:
    """The full card if it fits the registry's description column, else the compact card (cut to
    ``limit`` characters with a pointer to the artifact if even that is too long)."""
    full = card.to_markdown()
    if len(full) <= limit:
        return full
    compact = card.to_markdown(compact=True)
    if len(compact) <= limit:
        return compact
    tail = f"\n\n... (cut at {limit} characters; full card: `{card_uri(card.run_id)}`)\n"
    return compact[:limit - len(tail)] + tail


def log_card(client: Any, card: ModelCard, name: str, version: str | int) -> str:
    """Log ``model_card.md`` / ``model_card.json`` into the card's run and set the Markdown as the
    description of ``name`` v``version`` (shown on the version page of the MLflow UI).

    ``name``/``version`` must be the card's own (a card describes exactly one version). Works on
    a finished run: artifacts are written to the run's artifact location, not through the run's
    lifecycle. Returns the description that was set.
    """
    if (name, str(version)) != (card.model_name, str(card.version)):
        raise ValueError(f"card describes {card.model_name} v{card.version}, not {name} v{version}")
    client.log_text(card.run_id, card.to_markdown(), CARD_MD)
    client.log_dict(card.run_id, card.to_dict(), CARD_JSON)
    description = registry_description(card)
    client.update_model_version(name, str(version), description=description)
    return description


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

def _num(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _cell(v: Any) -> str:
    """A table cell: ``|`` escaped, newlines flattened (a hyper-parameter could hold either)."""
    return str(v).replace("|", "\\|").replace("\n", " ")


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [_row(head), "|" + "---|" * len(head), *(_row(r) for r in rows)]


def _promotion_lines(card: ModelCard) -> list[str]:
    promo = card.promotion
    if promo is None:
        return ["- **decision**: not decided (the promotion rule has not run on this version)"]
    what = {"promoted": f"**promoted**: now holds alias `{promo.alias}`",
            "refused": f"**not promoted**: alias `{promo.alias}` stays where it was",
            "unchanged": f"**unchanged**: already holds alias `{promo.alias}`"}.get(promo.decision, promo.decision)
    lines = [f"- **decision**: {what}",
             f"- **compared with**: {'version ' + promo.compared_to if promo.compared_to else 'no champion (first)'}",
             f"- **reason**: {promo.reason}"]
    if promo.decided_at:
        lines.append(f"- **decided at**: {promo.decided_at}")
    return lines


def _metric_rows(card: ModelCard) -> list[list[str]]:
    return [[task, *(_num(m.get(key)) for key, _ in card.metric_columns)] for task, m in card.metrics.items()]


def _spread_rows(card: ModelCard) -> list[list[str]]:
    return [[s.task, _num(s.spread), f"{s.lowest_market} {_num(s.lowest)}" if s.lowest_market else "n/a",
             f"{s.highest_market} {_num(s.highest)}" if s.highest_market else "n/a",
             f"{s.markets_defined} of {s.markets_total}"] for s in card.spread]


def _fpr_line(op: OperatingPoint) -> str:
    span = op.fpr_range()
    head = (f"**{op.task}**: flagged when score >= {op.threshold:.4f} ({op.rule}); overall flag rate "
            f"{_pct(op.overall.flag_rate)}, FPR {_pct(op.overall.fpr)}")
    if span is None:
        return head + "; fewer than two markets with negatives: no FPR spread"
    low, high = span
    return (head + f"; FPR by market from {low.market} {_pct(low.fpr)} to {high.market} {_pct(high.fpr)} "
            f"(spread {100 * (high.fpr - low.fpr):.2f} points)")


def _render(card: ModelCard, compact: bool) -> str:
    """Sections in reading order; ``compact`` keeps the ones a reviewer decides on (decision, metrics,
    markets, fairness summaries) and drops counts, hyper-parameters, baselines and per-market rates."""
    w = card.window
    tasks = list(card.metrics)
    out = [f"# {card.title}: `{card.model_name}` version {card.version}", "",
           f"- **run**: `{card.run_id}` (run date {card.run_date}); this card: `{CARD_MD}` / `{CARD_JSON}` "
           "in the run's artifacts",
           f"- **data window**: {w.first_day} .. {w.last_day} ({w.lookback_days} days)"
           + (f": {w.detail}" if w.detail else ""),
           f"- **labels**: {card.labels_note}",
           f"- **rows**: {card.train_rows} train, {card.holdout_rows} hold-out", "",
           "## Promotion", "", *_promotion_lines(card), "",
           "## Hold-out metrics", "",
           *_table(["task", *(h for _, h in card.metric_columns)], _metric_rows(card)), ""]
    if not compact:
        out += ["## Positive labels", "",
                *_table(["task", "train positives", "hold-out positives"],
                        [[t, "n/a" if c.train is None else c.train, "n/a" if c.holdout is None else c.holdout]
                         for t, c in card.positives.items()]), "",
                "## Hyperparameters", "",
                *_table(["parameter", "value"], [[k, v] for k, v in card.hyperparameters.items()]), ""]
    market_tasks = [t for t in tasks if any(t in row for row in card.by_market.values())]   # e.g. no regression task
    out += ["## ROC AUC by market", "",
            *_table(["market", *market_tasks], [[m, *(_num(row.get(t)) for t in market_tasks)]
                                                for m, row in sorted(card.by_market.items())]), ""]
    if card.baselines and not compact:
        names = [card.model_label, *card.baselines]
        sources = {card.model_label: card.metrics, **card.baselines}
        rows = []
        for task in tasks:
            for key, heading in card.metric_columns:
                values = [sources[n].get(task, {}).get(key) for n in names]
                if any(v is not None for v in values):
                    rows.append([task, heading, *(_num(v) for v in values)])
        out += ["## Baselines on the same hold-out", "", *_table(["task", "metric", *names], rows), ""]
        out += [f"- `{n}`: {d}" for n, d in card.baseline_notes.items()]
        if card.baseline_notes:
            out.append("")
    if card.market_scores:
        names = list(card.market_scores)
        markets = sorted({m for scores in card.market_scores.values() for m in scores})
        rows = [["overall", *(_num(card.primary.get(n)) for n in names)]] if card.primary else []
        rows += [[m, *(_num(card.market_scores[n].get(m)) for n in names)] for m in markets]
        out += [f"## Promotion metric `{card.primary_metric}` by market", "",
                "What the champion/challenger rule compares, market by market"
                + (" (baselines beside it)." if len(names) > 1 else "."), "",
                *_table(["market", *names], rows), ""]
    out += ["## Fairness", "", "### ROC AUC spread across markets", "",
            *_table(["task", "AUC spread (max - min)", "lowest market", "highest market", "markets with an AUC"],
                    _spread_rows(card)), "",
            "### Flag rate and false-positive rate at the decision threshold, by market", ""]
    if card.operating_points:
        for op in card.operating_points:
            out += [_fpr_line(op), ""]
            if not compact:
                out += [*_table(["market", "rows", "flagged", "flag rate", "negatives", "false positives", "FPR"],
                                [[r.market, r.rows, r.flagged, _pct(r.flag_rate), r.negatives, r.false_positives,
                                  _pct(r.fpr)] for r in (op.overall, *op.by_market)]), ""]
        out += ["Negatives are rows without a positive label; where labels are partial (moderation catches "
                "only some bad actors) the FPR is an upper bound.", ""]
    else:
        out += [card.operating_point_note or "No decision threshold: this model ranks, it does not flag.", ""]
    if compact:
        out += [f"Compact card (the registry description holds {DESCRIPTION_MAX} characters). Full card with "
                "positives, hyper-parameters, baselines, rates per market and plots: "
                f"`{card_uri(card.run_id)}`.", ""]
        return "\n".join(out).rstrip("\n") + "\n"
    out += ["The promotion rule refuses a challenger whose promotion metric drops by more than the configured "
            "tolerance in any market, whatever its overall gain.", ""]
    if card.plots:
        out += ["## Plots", "", f"Run artifacts of `{card.run_id}`:", ""]
        out += [f"- [{p}]({p})" for p in card.plots]
        out.append("")
    if card.notes:
        out += ["## Notes", "", *(f"- {n}" for n in card.notes), ""]
    return "\n".join(out).rstrip("\n") + "\n"
