"""SavedModel export for TF Serving."""

from tfcvr.export.saved_model import (
    PREDICT_FEATURES,
    SERVING_DEFAULT,
    existing_versions,
    export_for_serving,
    next_version,
)
