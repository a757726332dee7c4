"""Two exported versions of a tiny model, served by the in-process gRPC and REST stand-ins."""

import keras
import pytest

from serving.local import ExportedModels, served_models, start_grpc_server, start_rest_server
from tests.conftest import TINY_SCHEMA
from tfcvr import export, models
from tfcvr.data import schema as schema_lib


@pytest.fixture(scope="package")
def served(tmp_path_factory):
    """{"schema", "base", "models" {version: model}, "exported", "grpc" host:port, "rest" host:port}; stable -> 1."""
    schema = schema_lib.Schema.from_dict(TINY_SCHEMA)
    base = str(tmp_path_factory.mktemp("served"))
    versions = {}
    for version, seed in ((1, 0), (2, 1)):
        keras.utils.set_random_seed(seed)
        versions[version] = models.build("esmm", schema, embedding_dim=4, hidden_units=(8,), tower_units=(4,))
        export.export_for_serving(versions[version], schema, base, version=version)
    # Both versions served (TF Serving's latest-2 policy), so the label may name version 1.
    exported = ExportedModels(served_models({"cvr": base}, {"cvr": {"stable": 1}}, latest_versions=2))
    grpc_server, grpc_port = start_grpc_server(exported)
    rest_server, rest_port = start_rest_server(exported)
    yield {
        "schema": schema,
        "base": base,
        "models": versions,
        "exported": exported,
        "grpc": f"localhost:{grpc_port}",
        "rest": f"localhost:{rest_port}",
    }
    grpc_server.stop(None).wait()
    rest_server.shutdown()
    exported.close()
