"""tfcvr: debiased post-click conversion-rate rankers for TensorFlow / Keras 3."""

import setuptools

# Version ranges measured to install together on Python 3.11 (a clean venv, pip resolver):
# TF 2.21 with Keras 3; tensorflow-serving-api 2.21 shares TF's protobuf range (>=6.31.1,<8).
# Not here on purpose: tensorflow-io (native ops do not load on TF >= 2.18) and
# tensorflow-recommenders (Keras 2 only).
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.15,<4",
    "tensorflow-serving-api>=2.21,<2.22",
    "tensorboard>=2.21,<2.22",
    "absl-py>=2.1,<3",
    "scikit-learn>=1.5,<2",
    "numpy>=2.0,<3",
    # Paired significance tests of the leaderboard (tfcvr.metrics.significance; scikit-learn needs it too).
    "scipy>=1.11,<2",
    # DCN-V2's cross layer and DLRM's dot interaction (--interaction=cross|dot; tfcvr.layers.feature_interaction);
    # 0.4 checked on TF 2.21 / Keras 3.15. Pinned to one minor version: its layers' weights are checkpointed.
    "keras-rs>=0.4,<0.5",
    # CRC-32C of TFRecord frames: how many records a damaged file loses past its first bad one (tfcvr.data.integrity).
    "google-crc32c>=1.5,<2",
]

# The rest are extras, each imported only by the feature that needs it (tfcvr/optional.py names the extra in
# its error): `pip install ".[vertex,plots]"`.
EXTRAS_REQUIRE = {
    # trainer.vertex builds and submits Vertex AI CustomJobs (packaging: the TensorFlow requirement vs an image's);
    # cloudml-hypertune reports the tuning metric under Vertex AI hyperparameter tuning jobs.
    "vertex": ["google-cloud-aiplatform>=1.60,<3", "packaging>=23", "cloudml-hypertune>=0.1.0.dev6,<0.2"],
    # The leaderboard's plots/ and trainer.evaluate's calibration.png.
    "plots": ["matplotlib>=3.8,<4"],
    # Parquet input of tfcvr.data.convert (tensorflow-io's Parquet ops do not load on TF 2.21).
    "parquet": ["pyarrow>=15,<27"],
    # Data preparation on Apache Beam (`python -m tfcvr.data.convert`, DirectRunner or Dataflow); [gcp] brings the
    # Dataflow runner and gs:// IO. 2.77 resolves beside TF 2.21 with protobuf 6.33.
    "beam": ["apache-beam[gcp]>=2.77,<3"],
}
EXTRAS_REQUIRE["all"] = sorted({requirement for extra in EXTRAS_REQUIRE.values() for requirement in extra})

setuptools.setup(
    name="tfcvr",
    version="0.1.0",
    description="Debiased post-click CVR rankers (ESMM, IPW/DR, UKD, DDPO, ...) for TensorFlow and TF Serving.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=setuptools.find_packages(include=["tfcvr", "tfcvr.*", "trainer", "trainer.*", "serving", "serving.*"]),
    install_requires=INSTALL_REQUIRES,
    # PEP 561: the packages carry their own type hints.
    package_data={"tfcvr": ["py.typed"], "trainer": ["py.typed"], "serving": ["py.typed"]},
    # ruff: lint and format check (ruff.toml), pinned to one minor version because its style changes between them.
    extras_require={
        **EXTRAS_REQUIRE,
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",
            "ruff>=0.17,<0.18",
            # mypy.ini: the three packages type-checked; pinned to one minor version, whose inference changes.
            "mypy>=2.4,<2.5",
            *EXTRAS_REQUIRE["all"],
        ],
    },
    license="Apache-2.0",
)
