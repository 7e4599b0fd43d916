"""Ecosystem simulator: determinism, planted behaviours at their rates, look-alikes, feed hygiene.

Expected values come from the configuration and from first principles (binomial / clustered
sampling variances written out here), never from the simulator's own helpers; Hamming distances
are recomputed in plain Python from the hex strings.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict

import pytest
from pyspark.sql import functions as F

from libs.sim import rand
from libs.sim.config import SimConfig
from libs.sim.creators import accounts, creators, devices
from libs.sim.truth import public_view, score_creators, split, syndicate_recall
from libs.sim.videos import videos
from schemas import conform
from schemas import raw_creators, raw_devices, raw_videos, truth_creators, truth_videos

RUN = dt.date(2026, 11, 1)
# Small but behaviour-rich: elevated rates so a few hundred creators still hold every behaviour.
RICH = SimConfig(seed=11, n_creators=420, days=3, low_effort=0.12, pirate=0.15, matrix_farm=0.10,
                 family_shared_device=0.08, licensed_repost=0.10)


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.fixture(scope="module")
def rich(spark):
    acc = accounts(spark, RICH, RUN)
    cr = creators(acc, RUN)
    vd = videos(acc, RICH, RUN)
    return {
        "acc": acc,
        "creators_df": cr,
        "videos_df": vd,
        "creators": cr.toPandas(),
        "devices": devices(acc, RICH, RUN).toPandas(),
        "videos": vd.toPandas(),
    }


# --- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"camouflage": 1.5}, "camouflage must be in [0, 1]"),
    ({"n_creators": 0}, "n_creators must be >= 1"),
    ({"farm_size_min": 1}, "farm of one account"),
    ({"matrix_farm": 0.9}, "too high for farm sizes"),
    ({"low_effort": 0.5, "pirate": 0.5}, "exceeds 1"),
    ({"pirate_bits_min": 50, "pirate_bits_max": 40}, "pirate_bits_min <= pirate_bits_max"),
])
def test_invalid_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match="invalid SimConfig") as err:
        SimConfig(**kwargs)
    assert message in str(err.value)


# --- randomness --------------------------------------------------------------------------------

def test_draws_do_not_depend_on_partitioning(spark):
    def draws(parts: int):
        df = spark.range(0, 2000, numPartitions=parts).select(
            "id", rand.uniform(3, "u", "id").alias("u"), rand.randint(3, "r", 2, 5, "id").alias("r"),
            rand.normal(3, "n", "id").alias("n"))
        return sorted(map(tuple, df.collect()))

    one, many = draws(1), draws(7)
    assert one == many
    us = [r[1] for r in one]
    assert 0 <= min(us) and max(us) < 1
    assert {r[2] for r in one} == {2, 3, 4, 5}
    # 2000 draws: mean of U is 0.5 +- 4 * sqrt(1/12/2000) = 0.026; N(0,1) mean within 4/sqrt(2000) = 0.09.
    assert abs(sum(us) / len(us) - 0.5) < 0.026
    assert abs(sum(r[3] for r in one) / len(one)) < 0.09


# --- determinism -------------------------------------------------------------------------------

def _sorted_rows(df, key):
    return list(df.orderBy(key).collect())


def test_same_seed_same_rows_regardless_of_shuffle_partitions(spark, rich):
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "5")   # different partitioning of every shuffle
    try:
        again = videos(accounts(spark, RICH, RUN), RICH, RUN)
        rows = _sorted_rows(again, "video_id")
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    expected = rich["videos"].sort_values("video_id")
    assert [r[0] for r in rows] == list(expected["video_id"])
    assert [r["fingerprint"] for r in rows] == list(expected["fingerprint"])
    assert rows == _sorted_rows(rich["videos_df"], "video_id")


def test_different_seed_different_data(spark, rich):
    other = SimConfig(**{**RICH.__dict__, "seed": 12})
    a = _sorted_rows(creators(accounts(spark, RICH, RUN), RUN), "creator_id")
    b = _sorted_rows(creators(accounts(spark, other, RUN), RUN), "creator_id")
    assert len(a) == len(b) == RICH.n_creators
    assert sum(x != y for x, y in zip(a, b)) > 0.9 * len(a)
    pay_a, pay_b = {r[5] for r in a}, {r[5] for r in b}   # payment_account_id: hash-derived ids
    assert not pay_a & pay_b


# --- planted rates -----------------------------------------------------------------------------

def test_creator_roles_at_configured_rates(spark):
    """Default rates on 40k creators (one cheap aggregate).

    Individually drawn roles are binomial: tolerance 4 * sqrt(p (1-p) / n). Farms, sybil clusters
    and families come in blocks of B = 12 consecutive ids (3333 blocks): per block X = Bernoulli(q)
    * size, with q = rate * B / E[size]; the fraction's sd is sqrt(Var X / blocks) / B, tolerance 4 sd.
    """
    cfg = SimConfig(seed=5, n_creators=40_000, days=3)
    cr = creators(accounts(spark, cfg, RUN), RUN).toPandas()
    got = cr["truth_look_alike"].fillna(cr["truth_role"]).value_counts().to_dict()
    n, blocks = cfg.n_creators, cfg.n_creators // 12

    def clustered_tol(rate: float, sizes: range) -> float:
        mean = sum(sizes) / len(sizes)
        mean_sq = sum(s * s for s in sizes) / len(sizes)
        q = rate * 12 / mean
        var_x = q * mean_sq - (q * mean) ** 2
        return 4 * math.sqrt(var_x * blocks) / n

    def binomial_tol(rate: float) -> float:
        return 4 * math.sqrt(rate * (1 - rate) / n)

    expected = {
        "low_effort": (0.06, binomial_tol(0.06)),
        "pirate": (0.04, binomial_tol(0.04)),
        "licensed_repost": (0.02, binomial_tol(0.02)),
        "account_trading": (0.02, binomial_tol(0.02)),
        "matrix_farm": (0.05, clustered_tol(0.05, range(3, 13))),
        "sybil": (0.02, clustered_tol(0.02, range(5, 13))),
        "family_shared_device": (0.03, clustered_tol(0.03, range(2, 4))),
        "agency_managed": (0.04, clustered_tol(0.04, range(4, 11))),
    }
    for role, (rate, tol) in expected.items():
        assert abs(got.get(role, 0) / n - rate) < tol, (role, got.get(role, 0) / n, rate, tol)
    assert sum(got.values()) == n

    # Overlay: buying fake engagement (binomial over everyone; + a little for the random share of
    # creators outside groups the conditional rate is scaled by).
    buyers = cr["truth_abuse"].map(lambda a: "fake_engagement" in list(a))
    assert abs(buyers.mean() - 0.04) < binomial_tol(0.04) + 0.001
    assert (cr.loc[buyers, "truth_ring_id"].notna()).all() and cr.loc[~buyers, "truth_ring_id"].isna().all()
    assert not set(cr.loc[buyers, "truth_role"]) & {"matrix_farm", "sybil", "family_shared_device", "agency_managed"}
    rings = cr.loc[buyers].groupby("truth_ring_id").size()
    # ~267 rings for ~1600 buyers: P(a ring gets no buyer) = exp(-6) -> nearly all rings are used.
    assert cfg.n_rings == round(40_000 * 0.04 / 6) and len(rings) >= 0.97 * cfg.n_rings

    # Migration: a share 0.35 of farm operators have banned earlier accounts (binomial over operators).
    farms = cr[cr["truth_role"] == "matrix_farm"].groupby("truth_operator_id")
    migrated = farms["status"].apply(lambda st: (st == "banned").any())
    tol = 4 * math.sqrt(0.35 * 0.65 / len(migrated))
    assert abs(migrated.mean() - 0.35) < tol, (migrated.mean(), tol)
    for op, accts in farms:
        banned = accts[accts["status"] == "banned"]
        active = accts[accts["status"] == "active"]
        new_ones = active["truth_abuse"].map(lambda a: "migration" in list(a))
        if len(banned):
            assert len(banned) == max(1, len(accts) // 3) and new_ones.all(), op
            kind = set(active["truth_migration_kind"])
            assert len(kind) == 1, op
            if kind == {"market"}:   # new accounts elsewhere, banned ones in the previous market
                assert (set(banned["market"]) == set(active["truth_previous_market"])
                        and not set(banned["market"]) & set(active["market"])), op
            else:
                assert set(banned["market"]) == set(active["market"]), op
        else:
            assert not new_ones.any() and active["truth_migration_kind"].isna().all(), op


# --- copies ------------------------------------------------------------------------------------

def test_pirate_copies_are_near_copies_of_an_earlier_honest_video(rich):
    v, c = rich["videos"], rich["creators"].set_index("creator_id")
    by_id = v.set_index("video_id")
    copies = v[v["truth_copy_kind"] == "piracy"]
    assert len(copies) >= 20
    for _, row in copies.iterrows():
        orig = by_id.loc[row["truth_original_video_id"]]
        assert orig["creator_id"] != row["creator_id"]
        # an honest creator's video (honest role; may still buy engagement, which is not about content)
        assert c.loc[orig["creator_id"], "truth_role"] in ("honest", "family_shared_device", "licensed_repost", "agency_managed")
        assert c.loc[row["creator_id"], "truth_role"] == "pirate"
        assert list(c.loc[row["creator_id"], "truth_abuse"])[0] == "pirate"
        assert orig["published_at"] < row["published_at"]
        d = hamming(row["fingerprint"], orig["fingerprint"])
        assert RICH.pirate_bits_min <= d <= RICH.pirate_bits_max
        assert d == row["truth_copy_bits"]
    # Bits are spread over the range, not stuck at one end.
    assert copies["truth_copy_bits"].min() < 15 and copies["truth_copy_bits"].max() > 30
    # Share of a pirate's videos that are copies: 0.5 configured; binomial 4-sigma, minus up to 0.1
    # for copy slots early in a 3-day window that find no earlier original (documented fallback).
    pirates = c.index[c["truth_role"] == "pirate"]
    pv = v[v["creator_id"].isin(pirates)]
    share = (pv["truth_copy_kind"] == "piracy").mean()
    tol = 4 * math.sqrt(0.25 / len(pv))
    assert 0.5 - tol - 0.1 < share < 0.5 + tol, (share, len(pv))


def test_licensed_reposts_are_near_duplicates_but_not_abuse(rich):
    v, c = rich["videos"], rich["creators"].set_index("creator_id")
    by_id = v.set_index("video_id")
    lic = v[v["truth_copy_kind"] == "licensed"]
    assert len(lic) >= 10
    for _, row in lic.iterrows():
        orig = by_id.loc[row["truth_original_video_id"]]
        assert orig["published_at"] < row["published_at"]
        assert hamming(row["fingerprint"], orig["fingerprint"]) <= RICH.licensed_bits_max
        assert "pirate" not in list(c.loc[row["creator_id"], "truth_abuse"])
        assert c.loc[row["creator_id"], "truth_look_alike"] == "licensed_repost"


def test_farm_accounts_repost_the_operators_content(rich):
    v, c = rich["videos"], rich["creators"].set_index("creator_id")
    by_id = v.set_index("video_id")
    dups = v[v["truth_copy_kind"] == "farm_duplicate"]
    assert len(dups) >= 20
    for _, row in dups.iterrows():
        orig = by_id.loc[row["truth_original_video_id"]]
        assert c.loc[orig["creator_id"], "truth_operator_id"] == c.loc[row["creator_id"], "truth_operator_id"]
        assert hamming(row["fingerprint"], orig["fingerprint"]) <= RICH.farm_bits_max
        assert orig["published_at"] <= row["published_at"]


def test_unrelated_videos_are_far_apart(rich):
    """Independent 256-bit fingerprints sit ~128 bits apart: the planted copies stand out."""
    fps = list(rich["videos"][rich["videos"]["truth_copy_kind"].isna()]["fingerprint"][:60])
    assert all(len(f) == 64 and f == f.lower() for f in fps)
    assert all(hamming(a, b) > 70 for a, b in itertools.combinations(fps, 2))


def test_low_effort_signals_overlap_but_shift(rich):
    v = rich["videos"].merge(rich["creators"][["creator_id", "truth_abuse"]], on="creator_id")
    v = v.merge(rich["creators"][["creator_id", "truth_role"]], on="creator_id")
    le = v[v["truth_role"] == "low_effort"]
    honest = v[v["truth_role"] == "honest"]
    assert le["static_frame_ratio"].mean() > honest["static_frame_ratio"].mean() + 0.1
    assert le["aesthetic_score"].mean() < honest["aesthetic_score"].mean() - 0.05
    assert le["title"].str.contains("buy now").mean() > honest["title"].str.contains("buy now").mean() + 0.2
    # ...and honest creators make static slideshows too (the look-alike).
    assert (honest["static_frame_ratio"] > 0.6).sum() > 0
    window = {(RUN - dt.timedelta(days=i)).isoformat() for i in range(RICH.days)}
    assert set(v["dt"]) == window
    assert (v["published_at"].dt.strftime("%Y-%m-%d") == v["dt"]).all()


# --- devices: farms vs families ----------------------------------------------------------------

def test_farms_share_devices_families_and_agencies_share_one(rich):
    c, d = rich["creators"], rich["devices"]
    op = dict(zip(c["creator_id"], c["truth_operator_id"]))
    fam = dict(zip(c["creator_id"], c["truth_family_id"]))
    agency = dict(zip(c["creator_id"], c["truth_agency_id"]))
    migrated_ops = set(c[c["status"] == "banned"]["truth_operator_id"])
    users = d.groupby("device_id")["creator_id"].apply(set)
    farm_accounts = [k for k, o in op.items() if o]
    assert len(set(op[k] for k in farm_accounts)) >= 2
    for acct in farm_accounts:
        mine = d[d["creator_id"] == acct]["device_id"]
        siblings = set().union(*(users[x] for x in mine)) - {acct}
        # Every farm account shares with its own operator's accounts, never with another operator;
        # the only outsiders are buyers of a migrated (banned) operator's second-hand phone.
        assert any(op.get(s) == op[acct] for s in siblings), acct
        assert all(op.get(s) in (op[acct], None) for s in siblings), acct
        assert all(op.get(s) == op[acct] or op[acct] in migrated_ops for s in siblings), acct
    payments = c[c["truth_operator_id"].notna()].groupby("truth_operator_id")["payment_account_id"]
    assert (payments.nunique() < payments.size()).all()

    honest = {k for k, o in op.items() if not o}
    shared_pairs: dict[tuple, int] = defaultdict(int)
    unexplained = 0
    for device, accts in users.items():
        accts = accts & honest
        if len(accts) > 1:
            fams, ags = {fam[a] for a in accts}, {agency[a] for a in accts}
            if len(fams) == 1 and fam[next(iter(accts))]:
                assert len(accts) <= 3                              # a family's phone
                for pair in itertools.combinations(sorted(accts), 2):
                    shared_pairs[pair] += 1
            elif len(ags) == 1 and agency[next(iter(accts))]:
                assert len(accts) <= 10                             # an agency's office computer
            else:
                unexplained += 1                                    # a public device
    assert shared_pairs and max(shared_pairs.values()) == 1
    # Public devices: int(n * 0.04 / 2) of them (see PUBLIC_DEVICE_P); nothing else links honest strangers.
    assert unexplained <= int(RICH.n_creators * 0.04 / 2)
    families = c[c["truth_family_id"].notna()].groupby("truth_family_id").size()
    assert families.between(2, 3).all()
    agencies = c[c["truth_agency_id"].notna()].groupby("truth_agency_id")["creator_id"].apply(set)
    for members in agencies:
        office = [dv for dv, us in users.items() if members <= us]
        assert len(office) == 1 and len(users[office[0]]) == len(members)


# --- feeds -------------------------------------------------------------------------------------

def test_public_feeds_hide_truth_and_match_schemas(spark, rich):
    cr_pub, cr_truth = split(rich["creators_df"], ["creator_id"], RICH.seed)
    vd_pub, vd_truth = split(rich["videos_df"], ["video_id"], RICH.seed)
    dv_pub = public_view(devices(rich["acc"], RICH, RUN))
    for df, schema in ((cr_pub, raw_creators.SCHEMA), (dv_pub, raw_devices.SCHEMA), (vd_pub, raw_videos.SCHEMA),
                       (cr_truth, truth_creators.SCHEMA), (vd_truth, truth_videos.SCHEMA)):
        assert sorted(df.columns) == sorted(schema.fieldNames())
        conform(df, schema)   # raises on any type drift
    for df in (cr_pub, dv_pub, vd_pub):
        assert not [c for c in df.columns if c.startswith("truth_")]


# --- evaluation helper -------------------------------------------------------------------------

def test_score_creators_precision_recall_auc(spark):
    truth = spark.createDataFrame(
        [(1, "a", ["pirate"]), (1, "b", []), (1, "c", ["pirate", "fake_engagement"]), (1, "d", ["fake_engagement"]),
         (1, "e", ["low_effort"])], "seed long, creator_id string, truth_abuse array<string>")
    # e is unscored -> score 0. Ranking: a .9 (+), b .8 (-), c .7 (+), d .1 (-), e 0 (-).
    pred = spark.createDataFrame([("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.1)], "creator_id string, s double")
    r = score_creators(pred, truth, "pirate", "s", threshold=0.5)
    assert (r["positives"], r["negatives"], r["true_positives"], r["false_positives"]) == (2, 3, 2, 1)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 1.0
    # Positive-negative pairs ranked correctly: a beats b,d,e; c beats d,e -> 5 of 6.
    assert r["roc_auc"] == pytest.approx(5 / 6)
    tied = spark.createDataFrame([(k, 0.5) for k in "abcde"], "creator_id string, s double")
    assert score_creators(tied, truth, "pirate", "s")["roc_auc"] == pytest.approx(0.5)


def test_syndicate_recall_counts_found_and_covered_groups(spark):
    truth = spark.createDataFrame(
        [("a1", "op1"), ("a2", "op1"), ("a3", "op1"), ("b1", "op2"), ("b2", "op2"), ("c1", "op3"), ("x", None)],
        "creator_id string, truth_operator_id string")
    # op1: 2 of 3 flagged (found, covered at 0.5); op2: 1 of 2 (found, covered: 1 >= 2 * 0.5);
    # op3: unscored -> 0 (missed). x has no syndicate and does not count.
    pred = spark.createDataFrame([("a1", 0.9), ("a2", 0.6), ("a3", 0.1), ("b1", 0.7), ("x", 1.0)],
                                 "creator_id string, s double")
    r = syndicate_recall(pred, truth, "truth_operator_id", "s", threshold=0.5, min_share=0.5)
    assert r["syndicates"] == 3
    assert r["found_recall"] == pytest.approx(2 / 3) and r["covered_recall"] == pytest.approx(2 / 3)
    strict = syndicate_recall(pred, truth, "truth_operator_id", "s", threshold=0.5, min_share=0.6)
    assert strict["covered_recall"] == pytest.approx(1 / 3)   # op2's 1 of 2 no longer covers it
