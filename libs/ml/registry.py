"""The sequence model as an MLflow pyfunc, its registration, and the champion/challenger rule.

Why a pyfunc wrapping a state dict (not ``mlflow.pytorch``): scorers (Spark UDFs, batch jobs,
a serving endpoint) call one ``predict(DataFrame) -> DataFrame`` without knowing torch shapes.
The model version carries everything needed to rebuild the network -- state dict, the
:class:`~libs.ml.sequences.SequenceSpec` (L, F, label names) and the hyper-parameters -- as plain
artifacts, so a reviewer can read what was trained and a scorer loads it on CPU or GPU alike.
The class itself is imported from this package at load time: scoring images install the
platform wheel, as every job does.

Why a promotion rule in code: "the new model is better" must mean the same thing every week and
be visible afterwards. The alias (``champion``) moves only if there is no champion yet, or the
challenger is strictly better on the hold-out metric *and* no market got worse than the
champion by more than a tolerance (an overall gain bought with one market's loss is refused).
Decision and reason are written as tags on the challenger's model version, where reviewers
read them in the registry UI, whatever the outcome.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import mlflow
import numpy as np
import pandas as pd

from libs.ml.sequences import SequenceSpec, check_lengths, stack_flat
from libs.platform.config import Settings

log = logging.getLogger(__name__)

TAG_DECISION = "promotion.decision"
TAG_REASON = "promotion.reason"
TAG_ALIAS = "promotion.alias"
TAG_COMPARED_TO = "promotion.compared_to_version"
TAG_DECIDED_AT = "promotion.decided_at"
_TAG_MAX = 5000            # the registry's guaranteed tag value size
_EPS = 1e-9                # metric differences below this are float noise, not a change


class SequencePyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame[seq: list[float], seq_len: int]) -> DataFrame[p_<label>...]``.

    ``seq`` is the flat ``L*F`` row of the training contract. Artifacts: ``state_dict`` (torch
    file), ``spec`` (JSON of SequenceSpec), ``hparams`` (JSON: ``model`` = constructor args,
    ``training`` = training hyper-parameters).
    """

    def load_context(self, context: Any) -> None:
        import torch

        from libs.ml.device import pick_device
        from libs.ml.seqmodel import SequenceClassifier

        self.spec = SequenceSpec.from_dict(json.loads(Path(context.artifacts["spec"]).read_text()))
        meta = json.loads(Path(context.artifacts["hparams"]).read_text())
        self.device = pick_device()
        self.model = SequenceClassifier(**meta["model"])
        state = torch.load(context.artifacts["state_dict"], map_location=self.device, weights_only=True)
        # Versions registered before the prior correction existed have no such buffer: they serve
        # uncorrected probabilities (correction 0), as they did when they were approved. Anything
        # else missing or unexpected is a real mismatch.
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"prior_correction"}:
            raise RuntimeError(f"state dict does not fit the model: missing {missing}, unexpected {unexpected}")
        self.model.to(self.device).eval()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from libs.ml.seqmodel import predict as predict_probs

        missing = [c for c in ("seq", "seq_len") if c not in model_input.columns]
        if missing:
            raise ValueError(f"input lacks columns {missing}")
        seq = stack_flat(list(model_input["seq"]), self.spec)
        lengths = check_lengths(model_input["seq_len"].to_numpy(), self.spec.max_len)
        batch = int((params or {}).get("batch_size", 1024))
        probs = predict_probs(self.model, seq, lengths, self.device, batch_size=batch)
        return pd.DataFrame({f"p_{name}": probs[:, k] for k, name in enumerate(self.spec.label_names)},
                            index=model_input.index)


def example_frame(seq: np.ndarray, seq_len: np.ndarray, n: int = 3) -> pd.DataFrame:
    """A small pyfunc input (flat ``seq`` lists + ``seq_len``) from ``(N, L, F)`` arrays: input example and tests."""
    rows = min(n, len(seq))
    return pd.DataFrame({"seq": [np.asarray(s, dtype=np.float64).reshape(-1).tolist() for s in seq[:rows]],
                         "seq_len": np.asarray(seq_len[:rows]).astype(np.int64)})


def _pip_requirements() -> list[str]:
    # Pinned explicitly: MLflow's inference of requirements loads the model in a subprocess (slow)
    # and cannot see that the platform package provides SequencePyfunc.
    import torch

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}"]


def log_and_register(run: Any, model: Any, spec: SequenceSpec, hparams: Mapping[str, Any],
                     input_example: pd.DataFrame, name: str) -> str:
    """Log ``model`` as a pyfunc into ``run``, signature inferred from ``input_example``; register it as ``name``.

    ``run`` is an ``mlflow.ActiveRun``/``Run`` (the evaluation metrics the promotion rule reads
    must be logged to this same run). Returns the new model version (a string, as the registry
    client takes it). The spec is also logged as ``sequence_spec.json`` on the run.
    """
    import torch
    from mlflow.models import infer_signature

    from libs.ml.seqmodel import predict as predict_probs

    module = getattr(model, "module", model)               # unwrap DistributedDataParallel
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory(prefix="seqmodel-") as tmp:
        folder = Path(tmp)
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, folder / "state_dict.pt")
        (folder / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
        (folder / "hparams.json").write_text(json.dumps({"model": module.config(), "training": dict(hparams)},
                                                        indent=2, default=str))
        seq = stack_flat(list(input_example["seq"]), spec)
        was_training, device = module.training, next(module.parameters()).device
        probs = predict_probs(module, seq, input_example["seq_len"].to_numpy(), device)   # stays where it is
        module.train(was_training)
        output = pd.DataFrame({f"p_{n}": probs[:, k] for k, n in enumerate(spec.label_names)})
        with warnings.catch_warnings():
            # seq_len is an int by contract and never missing: MLflow's hint about nullable ints does not apply.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(input_example, output)
        active = mlflow.active_run()
        # Resume ``run`` unless it is the active one (nested if another run is active, e.g. a parent sweep run).
        ctx = (mlflow.start_run(run_id=run_id, nested=active is not None)
               if active is None or active.info.run_id != run_id else None)
        try:
            mlflow.log_dict(spec.to_dict(), "sequence_spec.json")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=SequencePyfunc(),
                artifacts={"state_dict": str(folder / "state_dict.pt"), "spec": str(folder / "spec.json"),
                           "hparams": str(folder / "hparams.json")},
                signature=signature, input_example=input_example, registered_model_name=name,
                pip_requirements=_pip_requirements())
        finally:
            if ctx is not None:
                mlflow.end_run()
    version = str(info.registered_model_version)
    log.info("registered %s version %s from run %s", name, version, run_id)
    return version


def _run_data(client: Any, model_version: Any) -> tuple[dict[str, float], dict[str, str]]:
    """``(metrics, params)`` of a version's source run (one lookup); empty when it has no run."""
    if not model_version.run_id:
        return {}, {}
    data = client.get_run(model_version.run_id).data
    return dict(data.metrics), dict(data.params)


def _champion(client: Any, name: str, alias: str) -> Any | None:
    # Read from the registered model's alias map rather than by catching the lookup's exception:
    # stores disagree on its error code (sqlite: INVALID_PARAMETER_VALUE, which also means other things).
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else client.get_model_version(name, str(version))


def _record(client: Any, name: str, version: str, alias: str, decision: str, reason: str,
            champion_version: str | None) -> None:
    tags = {TAG_DECISION: decision, TAG_REASON: reason[:_TAG_MAX], TAG_ALIAS: alias,
            TAG_COMPARED_TO: champion_version or "none",
            TAG_DECIDED_AT: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def promote_if_better(client: Any, name: str, version: str | int, alias: str, metric_key: str,
                      per_market_key_prefix: str, tolerance: float,
                      same_param_prefixes: Sequence[str] = ()) -> tuple[bool, str]:
    """Point ``alias`` at ``version`` if it beats the current holder; returns ``(promoted, reason)``.

    Higher metrics are better (AUCs). Metrics come from each version's source run:
    ``metric_key`` (the overall hold-out metric) and every ``<per_market_key_prefix><market>``.
    Rules, in order: no holder -> promote. Challenger or champion lacks ``metric_key`` ->
    refuse (no evidence either way; a person decides). Not strictly better -> refuse. A market of
    the champion missing from the challenger's metrics -> refuse (cannot show it did not get
    worse). Any market worse by more than ``tolerance`` -> refuse, naming each. Otherwise promote.
    Markets only the challenger has (a new market) do not block. Differences under 1e-9 count as
    equal. The metrics must come from comparable hold-outs (the evaluating job scores both models
    on the same window) -- this rule cannot tell. Decision and reason are tagged on ``version``.

    ``same_param_prefixes``: run params whose keys start with one of these must be identical in
    both source runs, else refuse -- e.g. the task weights a weighted-mean metric is computed with:
    a higher number under different weights is not "better".
    """
    version = str(version)
    challenger = client.get_model_version(name, version)
    champion = _champion(client, name, alias)
    if champion is not None and str(champion.version) == version:
        reason = f"version {version} already holds alias '{alias}'"
        _record(client, name, version, alias, "unchanged", reason, version)
        return False, reason
    if champion is None:
        reason = f"no '{alias}' yet: version {version} becomes the first"
        client.set_registered_model_alias(name, alias, version)
        _record(client, name, version, alias, "promoted", reason, None)
        log.info("%s: %s", name, reason)
        return True, reason
    champ_v = str(champion.version)
    (mine, mine_params), (theirs, their_params) = _run_data(client, challenger), _run_data(client, champion)
    refusals: list[str] = []
    if same_param_prefixes:
        def pinned(params: Mapping[str, str]) -> dict[str, str]:
            return {k: v for k, v in params.items() if k.startswith(tuple(same_param_prefixes))}

        p_mine, p_theirs = pinned(mine_params), pinned(their_params)
        differ = sorted(k for k in set(p_mine) | set(p_theirs) if p_mine.get(k) != p_theirs.get(k))
        if differ:
            refusals.append(f"not comparable with champion v{champ_v}: params differ "
                            + ", ".join(f"{k} {p_mine.get(k)!r} vs {p_theirs.get(k)!r}" for k in differ))
    if metric_key not in mine:
        refusals.append(f"challenger v{version} has no metric '{metric_key}' in its source run")
    if metric_key not in theirs:
        refusals.append(f"champion v{champ_v} has no metric '{metric_key}' in its source run")
    if not refusals and not mine[metric_key] > theirs[metric_key] + _EPS:
        refusals.append(f"{metric_key} {mine[metric_key]:.4f} is not better than champion v{champ_v}'s "
                        f"{theirs[metric_key]:.4f}")
    if not refusals:
        def markets(metrics: Mapping[str, float]) -> dict[str, float]:
            return {k[len(per_market_key_prefix):]: v for k, v in metrics.items()
                    if k.startswith(per_market_key_prefix) and k != metric_key}

        mine_m, theirs_m = markets(mine), markets(theirs)
        absent = sorted(set(theirs_m) - set(mine_m))
        if absent:
            refusals.append(f"no {per_market_key_prefix}* metric for market(s) {absent} that champion v{champ_v} has")
        worse = [f"{m} {mine_m[m]:.4f} vs {theirs_m[m]:.4f} (-{theirs_m[m] - mine_m[m]:.4f})"
                 for m in sorted(set(theirs_m) & set(mine_m)) if theirs_m[m] - mine_m[m] > tolerance + _EPS]
        if worse:
            refusals.append(f"market(s) worse than champion v{champ_v} by more than {tolerance}: {'; '.join(worse)}")
    if refusals:
        reason = "refused: " + " | ".join(refusals)
        _record(client, name, version, alias, "refused", reason, champ_v)
        log.info("%s v%s: %s", name, version, reason)
        return False, reason
    reason = (f"{metric_key} {mine[metric_key]:.4f} > champion v{champ_v}'s {theirs[metric_key]:.4f} and no market "
              f"worse by more than {tolerance}")
    client.set_registered_model_alias(name, alias, version)
    _record(client, name, version, alias, "promoted", reason, champ_v)
    client.set_model_version_tag(name, champ_v, "promotion.replaced_by", version)
    log.info("%s v%s promoted to '%s': %s", name, version, alias, reason)
    return True, reason


def promote_from_settings(client: Any, settings: Settings, version: str | int, metric_key: str,
                          per_market_key_prefix: str) -> tuple[bool, str]:
    """:func:`promote_if_better` for the creator-quality model with the environment's rule.

    Model name, alias and tolerance come from ``settings.section("ml")``
    (``creator_quality_model``, ``champion_alias``, ``market_tolerance``): the rule's knobs are
    configuration reviewed like code, not arguments each job may pick differently.
    """
    ml = settings.section("ml")
    return promote_if_better(client, str(ml["creator_quality_model"]), version, str(ml["champion_alias"]),
                             metric_key, per_market_key_prefix, float(ml["market_tolerance"]))
