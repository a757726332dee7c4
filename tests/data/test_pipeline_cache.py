"""TFRecordPipeline(cache=True): records parsed once, kept as columns, every pass a new permutation."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_SCHEMA, tiny_row, write_rows
from tfcvr.data import DataError, TFRecordPipeline
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.data import schema as schema_lib

WITH_LIST = schema_lib.Schema.from_dict(
    {
        **TINY_SCHEMA,
        "features": TINY_SCHEMA["features"]
        + [{"name": "history", "type": "categorical_list", "dtype": "int64", "num_buckets": 30, "max_length": 3}],
    }
)


def _files(tmp_path, count=3, rows=10):
    return [
        write_rows(
            tmp_path / f"s{k}.tfrecord",
            [
                tiny_row(
                    price=float(rows * k + i),
                    user_id=rows * k + i,
                    item_cat=f"c{i % 4}",
                    history=list(range(i % 4)) or None,
                    click=i % 2,
                    conversion=int(i % 4 == 1),
                )
                for i in range(rows)
            ],
        )
        for k in range(count)
    ]


def _batches(pipeline, **kwargs):
    with pipeline.named_errors():
        return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in pipeline.dataset(**kwargs)]


def _prices(batches):
    return np.concatenate([features["price"] for features, _ in batches])


def test_unshuffled_cache_gives_the_streamed_batches(tmp_path):
    files = _files(tmp_path)
    streamed = _batches(TFRecordPipeline(files, WITH_LIST, batch_size=4, group=True))
    cached = _batches(TFRecordPipeline(files, WITH_LIST, batch_size=4, group=True, cache=True))
    assert [f["price"].shape[0] for f, _ in cached] == [4] * 7 + [2]
    assert len(cached) == len(streamed)
    for (features, labels), (want_features, want_labels) in zip(cached, streamed):
        assert features.keys() == want_features.keys() and labels.keys() == want_labels.keys()
        for key in features:  # hashed ids, the padded list [batch, 3], floats
            np.testing.assert_array_equal(features[key], want_features[key])
            assert features[key].dtype == want_features[key].dtype
        for key in labels:  # click, conversion and the raw group key
            np.testing.assert_array_equal(labels[key], want_labels[key])
    history = cached[0][0]["history"]  # records 0-3 hold lists of 0, 1, 2 and 3 ids
    np.testing.assert_array_equal((history >= 0).sum(axis=1), [0, 1, 2, 3])


def test_every_pass_is_a_seeded_permutation_of_all_records(tmp_path):
    files = _files(tmp_path)

    def passes(seed, epoch_index=0, epochs=2):
        pipeline = TFRecordPipeline(files, WITH_LIST, batch_size=4, shuffle=True, seed=seed, cache=True)
        batches = _batches(pipeline, epochs=epochs, epoch_index=epoch_index)
        # A pass ends with its own short batch: batches never mix two passes.
        assert [f["price"].shape[0] for f, _ in batches] == ([4] * 7 + [2]) * epochs
        return _prices(batches).reshape(epochs, 30)

    first, second = passes(1)
    for one_pass in (first, second):
        np.testing.assert_array_equal(np.sort(one_pass), np.arange(30))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(30))
    np.testing.assert_array_equal(passes(1), [first, second])  # reproducible
    assert not np.array_equal(passes(2)[0], first)  # another seed
    assert not np.array_equal(passes(1, epoch_index=1)[0], first)  # the next epoch's dataset
    np.testing.assert_array_equal(passes(1, epoch_index=1, epochs=1)[0], passes(1, epoch_index=1)[0])


def test_records_are_read_parsed_and_dropped_once(tmp_path):
    # Records 1, 5 and 9 have conversion=1 and click=0: 7 of 10 remain.
    rows = [tiny_row(price=float(i), click=int(i % 4 != 1), conversion=int(i % 4 == 1)) for i in range(10)]
    path = write_rows(tmp_path / "d.tfrecord", rows)
    pipeline = TFRecordPipeline(
        path, WITH_LIST, batch_size=3, shuffle=True, seed=0, invalid_conversion="drop", cache=True, drop_remainder=True
    )
    first = _batches(pipeline, epochs=2)
    os.remove(path)  # later epochs come from memory
    later = list(pipeline.dataset(epoch_index=1, epochs=None).take(4).as_numpy_iterator())
    assert [f["price"].shape[0] for f, _ in first] == [3, 3] * 2  # drop_remainder: 7 -> two batches per pass
    assert pipeline.invalid_conversions_dropped == 3  # counted when parsed, not per pass
    kept = {0, 2, 3, 4, 6, 7, 8}
    assert set(_prices(first)) <= kept and set(_prices(later)) <= kept and len(later) == 4


def test_repeating_empty_data_ends(tmp_path):
    path = write_rows(tmp_path / "empty.tfrecord", [])
    pipeline = TFRecordPipeline(path, WITH_LIST, batch_size=4, shuffle=True, seed=0, cache=True)
    assert _batches(pipeline, epochs=None) == []


def test_cached_shards_are_disjoint_and_complete(tmp_path):
    files = _files(tmp_path)
    pipeline = TFRecordPipeline(files, WITH_LIST, batch_size=4, shuffle=True, seed=1, cache=True)
    for num_shards in (2, 3, 4):  # by record, by file, by record
        parts = [_prices(_batches(pipeline, num_shards=num_shards, shard_index=i)) for i in range(num_shards)]
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(30))


def test_a_bad_record_is_named_when_the_cache_is_filled(tmp_path):
    path = write_rows(tmp_path / "bad.tfrecord", [tiny_row() for _ in range(5)] + [tiny_row(click=2)])
    pipeline = TFRecordPipeline(path, WITH_LIST, batch_size=4, shuffle=True, seed=0, cache=True)
    with pytest.raises(DataError, match=r"Label 'click' \(click\) must be 0 or 1") as error:
        with pipeline.named_errors():
            pipeline.dataset()
    assert f"{path}:5" in str(error.value)


def test_another_seed_shares_the_parsed_records(tmp_path, monkeypatch):
    files = _files(tmp_path)
    fills = []
    original = pipeline_lib._Columns.__init__

    def counting_init(self, dataset):
        fills.append(1)
        original(self, dataset)

    monkeypatch.setattr(pipeline_lib._Columns, "__init__", counting_init)
    first = TFRecordPipeline(files, WITH_LIST, batch_size=4, shuffle=True, seed=1, cache=True)
    second = first.with_seed(2)
    one, two = _prices(_batches(first)), _prices(_batches(second))
    assert len(fills) == 1 and first.seed == 1 and second.seed == 2
    np.testing.assert_array_equal(
        two, _prices(_batches(TFRecordPipeline(files, WITH_LIST, batch_size=4, shuffle=True, seed=2, cache=True)))
    )
    assert not np.array_equal(one, two)
