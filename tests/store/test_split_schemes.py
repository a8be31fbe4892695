"""Split schemes: the corpus default and derived hold-outs (speaker-disjoint, Unknown trains, seeded)."""

import pytest

from sertool.errors import NotFound, SertoolError
from sertool.store.catalog import Catalog
from sertool.store.splits import SplitParams, clip_splits, derive_scheme, split_sql


@pytest.fixture
def catalog(tmp_path):
    """60 Train clips from 12 speakers (5 each) + 8 of unknown speakers, 10 Development, 5 Test1."""
    rows = []
    for s in range(12):
        rows += [(f"tr_{s:02d}_{i}", "Train", f"spk{s:02d}") for i in range(5)]
    rows += [(f"tr_unk_{i}", "Train", "Unknown") for i in range(8)]
    rows += [(f"dev_{i}", "Development", f"spk{90 + i % 3}") for i in range(10)]
    rows += [(f"t1_{i}", "Test1", "spk99") for i in range(5)]
    cat = Catalog(tmp_path / "catalog.duckdb")
    cat.con.executemany("INSERT INTO clips (clip_id, corpus, path, split, speaker_id) VALUES (?, 'c', ?, ?, ?)",
                        [(c, f"Audios/{c}.wav", s, spk) for c, s, spk in rows])
    yield cat
    cat.close()


def _speakers(cat, clip_ids):
    return {cat.scalar("SELECT speaker_id FROM clips WHERE clip_id = ?", [c]) for c in clip_ids}


def test_corpus_scheme_is_clips_split(catalog):
    got = clip_splits(catalog)
    assert got == dict(catalog.execute("SELECT clip_id, split FROM clips"))


def test_speaker_holdout_is_disjoint_and_unknown_trains(catalog):
    counts = derive_scheme(catalog, "abl", SplitParams(holdout=0.1, by="speaker", seed=3))
    s = clip_splits(catalog, "abl")
    train = [c for c, x in s.items() if x == "Train"]
    dev = [c for c, x in s.items() if x == "Development"]
    assert _speakers(catalog, train).isdisjoint(_speakers(catalog, dev))
    assert all(s[c] == "Train" for c in s if c.startswith("tr_unk"))
    n_from = 68
    assert round(0.1 * n_from) <= len(dev) < round(0.1 * n_from) + 5  # whole speakers of 5 clips each
    assert all(s[f"dev_{i}"] == "Test-Development" for i in range(10))
    assert all(s[f"t1_{i}"] == "Test1" for i in range(5))
    assert counts == {k: sum(v == k for v in s.values()) for k in set(s.values())}
    assert catalog.execute("SELECT params FROM split_schemes WHERE scheme = 'abl'")[0][0] == SplitParams(
        holdout=0.1, by="speaker", seed=3).to_json()


def test_derivation_is_deterministic_per_seed(catalog):
    derive_scheme(catalog, "a", SplitParams(holdout=0.2, seed=7))
    derive_scheme(catalog, "b", SplitParams(holdout=0.2, seed=7))
    assert clip_splits(catalog, "a") == clip_splits(catalog, "b")
    others = []
    for seed in range(8, 12):
        derive_scheme(catalog, f"s{seed}", SplitParams(holdout=0.2, seed=seed))
        others.append(clip_splits(catalog, f"s{seed}"))
    assert any(o != clip_splits(catalog, "a") for o in others)


def test_clip_holdout_takes_the_exact_share(catalog):
    derive_scheme(catalog, "byclip", SplitParams(holdout=0.25, by="clip", seed=1))
    s = clip_splits(catalog, "byclip")
    assert sum(v == "Development" for v in s.values()) == round(0.25 * 68)


def test_split_sql_joins(catalog):
    derive_scheme(catalog, "it's", SplitParams(holdout=0.1))  # a quote in the name must not break the SQL
    for scheme in ("corpus", "it's"):
        rows = catalog.execute(f"SELECT s.split, count(*) FROM clips c JOIN ({split_sql(scheme)}) s USING (clip_id) GROUP BY 1")
        assert dict(rows) == {k: sum(v == k for v in clip_splits(catalog, scheme).values())
                              for k in set(clip_splits(catalog, scheme).values())}


def test_refusals(catalog):
    derive_scheme(catalog, "abl", SplitParams(seed=1))
    first = clip_splits(catalog, "abl")
    with pytest.raises(SertoolError, match="exists already"):
        derive_scheme(catalog, "abl", SplitParams(seed=2))
    assert clip_splits(catalog, "abl") == first
    derive_scheme(catalog, "abl", SplitParams(holdout=0.3, seed=2), replace=True)
    assert clip_splits(catalog, "abl") != first
    assert catalog.scalar("SELECT count(*) FROM splits WHERE scheme = 'abl'") == len(first)
    with pytest.raises(SertoolError, match="reserved"):
        derive_scheme(catalog, "corpus", SplitParams())
    with pytest.raises(NotFound, match="no clips in split 'Trian'"):
        derive_scheme(catalog, "x", SplitParams(from_split="Trian"))
    with pytest.raises(NotFound):
        clip_splits(catalog, "nope")
    with pytest.raises(SertoolError):
        SplitParams(holdout=1.5)
