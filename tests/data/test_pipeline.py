import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_row, write_rows
from tfcvr.data import DataError, TFRecordPipeline, transform


def _all(pipeline):
    with pipeline.named_errors():
        return list(pipeline.dataset())


def test_parses_hashes_and_splits_labels(tmp_path, tiny_schema):
    rows = [
        tiny_row(user_id=i - 3, item_cat=f"c{i}", price=float(i), click=i % 2, conversion=int(i == 1)) for i in range(6)
    ]
    path = write_rows(tmp_path / "a.tfrecord", rows)
    ((features, labels),) = _all(TFRecordPipeline(path, tiny_schema, batch_size=8))
    assert set(features) == {"user_id", "item_cat", "price"}
    assert set(labels) == {"click", "conversion"}
    expected_users = transform.hash_categorical(tf.constant([i - 3 for i in range(6)], tf.int64), 50).numpy()
    np.testing.assert_array_equal(features["user_id"].numpy(), expected_users)
    expected_cats = tf.strings.to_hash_bucket_fast([f"c{i}" for i in range(6)], 20).numpy()
    np.testing.assert_array_equal(features["item_cat"].numpy(), expected_cats)
    np.testing.assert_allclose(features["price"].numpy(), np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(labels["click"].numpy(), [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(labels["conversion"].numpy(), [0, 1, 0, 0, 0, 0])


def test_hash_maps_any_int64_into_buckets():
    ids = tf.constant([-(2**63), -1, 0, 2**63 - 1, 42], tf.int64)
    buckets = transform.hash_categorical(ids, 7).numpy()
    assert buckets.min() >= 0 and buckets.max() < 7
    # Farmhash64 fingerprint of the int64 id, mod num_buckets, computed here in numpy's uint64 arithmetic.
    fingerprint = tf.fingerprint(tf.constant([[42]], tf.int64), method="farmhash64")
    expected = int(np.frombuffer(fingerprint.numpy().tobytes(), np.uint64)[0] % np.uint64(7))
    assert buckets[-1] == expected


def test_batched_hash_equals_hashing_each_column():
    ids = tf.constant([-(2**63), -1, 0, 2**63 - 1, 42, 7_000_000_019], tf.int64)
    other = tf.constant([5, 6, 7, 8, 9, 10], tf.int64)
    first, second = transform.hash_columns([ids, other], [100_003, 3])
    for column, hashed, buckets in ((ids, first, 100_003), (other, second, 3)):
        singles = [transform.hash_categorical(column[i : i + 1], buckets).numpy()[0] for i in range(6)]
        np.testing.assert_array_equal(hashed.numpy(), singles)
    words = tf.constant(["", "shoes", "x" * 300])
    np.testing.assert_array_equal(
        transform.hash_columns([words], [2**40])[0].numpy(), tf.strings.to_hash_bucket_fast(words, 2**40).numpy()
    )
    (empty,) = transform.hash_columns([tf.zeros([0], tf.int64)], [5])
    assert empty.shape == (0,)


def test_batches_and_seeded_shuffle(tmp_path, tiny_schema):
    files = [
        write_rows(tmp_path / f"s{k}.tfrecord", [tiny_row(price=float(10 * k + i)) for i in range(10)])
        for k in range(3)
    ]
    pattern = str(tmp_path / "s*.tfrecord")

    def prices(seed, epoch_index=0):
        pipeline = TFRecordPipeline(pattern, tiny_schema, batch_size=4, shuffle=True, seed=seed)
        with pipeline.named_errors():
            batches = list(pipeline.dataset(epoch_index=epoch_index))
        return np.concatenate([f["price"].numpy() for f, _ in batches])

    first, again, other, next_epoch = prices(1), prices(1), prices(2), prices(1, epoch_index=1)
    assert len(files) == 3 and first.shape == (30,)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, next_epoch)
    np.testing.assert_array_equal(next_epoch, prices(1, epoch_index=1))
    np.testing.assert_array_equal(np.sort(first), np.arange(30, dtype=np.float32))
    sizes = [f["price"].shape[0] for f, _ in _all(TFRecordPipeline(pattern, tiny_schema, batch_size=4))]
    assert sizes == [4] * 7 + [2]


def test_ground_truth_labels(simulated):
    pipeline = TFRecordPipeline(simulated["eval"], simulated["schema_obj"], 64, ground_truth=True)
    _, labels = _all(pipeline)[0]
    assert set(labels) == {"click", "conversion", "true_ctr", "true_cvr", "potential_conversion"}
    assert labels["true_cvr"].dtype == tf.float32
    assert np.all(labels["conversion"].numpy() <= labels["potential_conversion"].numpy())


def test_glob_matching_nothing(tmp_path, tiny_schema):
    with pytest.raises(ValueError, match=r"No file matches the input pattern '.*nothing-\*'"):
        TFRecordPipeline(str(tmp_path / "nothing-*"), tiny_schema, 4)


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (tiny_row(price=None), r"Feature: price \(data type: float\) is required but could not be found"),
        (tiny_row(price=3), r"Key: price.*Data types don't match"),
        (tiny_row(user_id="seven"), r"Key: user_id.*Data types don't match"),
        (tiny_row(click=None), r"Feature: click .*is required"),
        (tiny_row(click=0, conversion=1), r"conversion=1 but click=0"),
        (tiny_row(click=2), r"Label 'click' \(click\) must be 0 or 1"),
        (tiny_row(price=float("nan")), r"Numeric feature 'price' is NaN or Inf"),
        (tiny_row(price=float("inf")), r"Numeric feature 'price' is NaN or Inf"),
    ],
)
def test_bad_record_error_names_file_record_and_feature(tmp_path, tiny_schema, bad_row, message):
    rows = [tiny_row() for _ in range(5)] + [bad_row] + [tiny_row()]
    path = write_rows(tmp_path / "bad.tfrecord", rows)
    with pytest.raises(DataError, match=message) as error:
        _all(TFRecordPipeline(path, tiny_schema, batch_size=4))
    assert f"{path}:5" in str(error.value)


def test_garbage_record_is_located(tmp_path, tiny_schema):
    path = str(tmp_path / "garbage.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(b"\x01\x02 not a tf.Example")
    with pytest.raises(DataError, match=rf"Invalid record 0 in {path}"):
        _all(TFRecordPipeline(path, tiny_schema, batch_size=4))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_file_names_the_file(tmp_path, tiny_schema, damage):
    good = write_rows(tmp_path / "a-good.tfrecord", [tiny_row() for _ in range(10)])
    path = write_rows(tmp_path / "b-bad.tfrecord", [tiny_row() for _ in range(10)])
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data, bad = data[:-9], 9  # the last record loses its end
    else:
        data[len(data) // 2] ^= 0xFF  # 10 records of equal size: the first byte of record 5
        bad = 5
    open(path, "wb").write(bytes(data))
    with pytest.raises(DataError, match=rf"TFRecord file {path} is corrupt or truncated at record {bad} \("):
        _all(TFRecordPipeline([good, path], tiny_schema, batch_size=4))


def test_invalid_conversions_dropped_and_counted(tmp_path, tiny_schema):
    rows = [tiny_row(), tiny_row(click=0, conversion=1), tiny_row(conversion=1), tiny_row(click=0, conversion=1)]
    path = write_rows(tmp_path / "d.tfrecord", rows)
    pipeline = TFRecordPipeline(path, tiny_schema, batch_size=8, invalid_conversion="drop")
    ((features, labels),) = _all(pipeline)
    np.testing.assert_array_equal(labels["click"].numpy(), [1, 1])
    np.testing.assert_array_equal(labels["conversion"].numpy(), [0, 1])
    assert features["price"].shape == (2,)
    assert pipeline.invalid_conversions_dropped == 2


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_are_full_after_dropping_invalid_records(tmp_path, tiny_schema, shuffle):
    # 3 of 10 records are invalid: 7 remain, cut into 3 + 3 + 1 (dropped before batching, not per batch).
    invalid = {1, 4, 5}
    rows = [tiny_row(price=float(i), click=int(i not in invalid), conversion=int(i in invalid)) for i in range(10)]
    path = write_rows(tmp_path / "d.tfrecord", rows)
    pipeline = TFRecordPipeline(
        path, tiny_schema, batch_size=3, invalid_conversion="drop", shuffle=shuffle, seed=3, shuffle_buffer_size=5
    )
    batches = _all(pipeline)
    assert [f["price"].shape[0] for f, _ in batches] == [3, 3, 1]
    prices = np.concatenate([f["price"].numpy() for f, _ in batches])
    np.testing.assert_array_equal(np.sort(prices), [i for i in range(10) if i not in invalid])
    assert pipeline.invalid_conversions_dropped == 3


def test_a_chunk_with_only_invalid_records_yields_nothing(tmp_path, tiny_schema):
    rows = [tiny_row(click=0, conversion=1)] * 4 + [tiny_row(price=7.0)]
    path = write_rows(tmp_path / "d.tfrecord", rows)
    pipeline = TFRecordPipeline(path, tiny_schema, batch_size=4, invalid_conversion="drop")
    ((features, _),) = _all(pipeline)
    np.testing.assert_array_equal(features["price"].numpy(), [7.0])
    assert pipeline.invalid_conversions_dropped == 4


def test_invalid_arguments(tmp_path, tiny_schema):
    path = write_rows(tmp_path / "e.tfrecord", [tiny_row()])
    with pytest.raises(ValueError, match="`invalid_conversion` must be one of"):
        TFRecordPipeline(path, tiny_schema, 4, invalid_conversion="ignore")
    with pytest.raises(ValueError, match="`batch_size` must be positive"):
        TFRecordPipeline(path, tiny_schema, 0)


def test_errors_not_from_reading_input_pass_through_unscanned(tmp_path, tiny_schema):
    path = write_rows(tmp_path / "ok.tfrecord", [tiny_row()])
    pipeline = TFRecordPipeline(path, tiny_schema, batch_size=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="model bug"):
        with pipeline.named_errors():
            tf.debugging.Assert(False, ["model bug"])


def _user_ids(dataset):
    return sorted(int(u) for features, _ in dataset for u in features["user_id"].numpy())


def test_shards_by_file_with_enough_files_else_by_record(tmp_path, tiny_schema):
    files = [
        write_rows(tmp_path / f"part-{k}.tfrecord", [tiny_row(user_id=10 * k + i) for i in range(5)]) for k in range(3)
    ]
    pattern = str(tmp_path / "part-*.tfrecord")
    pipeline = TFRecordPipeline(pattern, tiny_schema, 4, shuffle=True, seed=1)
    assert pipeline.sharding(1) == "none" and pipeline.sharding(3) == "file" and pipeline.sharding(4) == "record"
    everything = _user_ids(pipeline.dataset())
    for num_shards in (2, 3, 4):
        parts = [_user_ids(pipeline.dataset(num_shards=num_shards, shard_index=i)) for i in range(num_shards)]
        # Disjoint and complete: every record is read by exactly one worker.
        assert sorted(sum(parts, [])) == everything
    by_file = [_user_ids(pipeline.dataset(num_shards=3, shard_index=i)) for i in range(3)]
    per_file = [_user_ids(TFRecordPipeline(f, tiny_schema, 4).dataset()) for f in files]  # hashed ids
    assert sorted(by_file) == sorted(per_file)
    with pytest.raises(ValueError, match="`shard_index` must be in"):
        pipeline.dataset(num_shards=2, shard_index=2)
