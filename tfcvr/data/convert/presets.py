"""Column layouts of preprocessed public datasets (torch-rechub, PaddleRec AITM, MTReclib): `convert csv --preset`."""

from tfcvr.data.convert import aliccp_fields
from tfcvr.data.convert.tabular import TableLayout

_TORCH_RECHUB_SPARSE = (
    "101",
    "121",
    "122",
    "124",
    "125",
    "126",
    "127",
    "128",
    "129",
    "205",
    "206",
    "207",
    "210",
    "216",
    "508",
    "509",
    "702",
    "853",
    "301",
    "109_14",
    "110_14",
    "127_14",
    "150_14",
)
_AITM_SPARSE = (
    "101",
    "121",
    "122",
    "124",
    "125",
    "126",
    "127",
    "128",
    "129",
    "205",
    "206",
    "207",
    "216",
    "508",
    "509",
    "702",
    "853",
    "301",
)

PRESETS = {
    # torch-rechub's Ali-CCP CSV: last value per field re-indexed (0 = missing/OOV), dense values min-max scaled.
    "torch-rechub-aliccp": TableLayout(
        click="click",
        conversion="purchase",
        categorical=_TORCH_RECHUB_SPARSE,
        numeric=tuple(aliccp_fields.dense_name(f) for f in aliccp_fields.DENSE),
    ),
    # PaddleRec AITM's Ali-CCP CSV: ids only; its test.csv has no header line.
    "paddlerec-aitm": TableLayout(
        click="click", conversion="purchase", categorical=_AITM_SPARSE, columns=("click", "purchase") + _AITM_SPARSE
    ),
    # MTReclib's processed AliExpress CSV (also used by torch-rechub, DDPO and EVI); search_id is kept
    # in the records (not a feature) for grouped evaluation.
    "mtreclib-aliexpress": TableLayout(
        click="click",
        conversion="conversion",
        categorical=tuple(f"categorical_{i}" for i in range(1, 17)),
        numeric=tuple(f"numerical_{i}" for i in range(1, 64)),
        extra=("search_id",),
    ),
}
