"""SavedModel export for TF Serving: signatures, warmup requests, versions (`tfcvr.export.model_config`: its config)."""

from tfcvr.export.retention import retain_versions
from tfcvr.export.saved_model import export_for_serving
from tfcvr.export.signatures import PREDICT, SERVING_DEFAULT
from tfcvr.export.versions import existing_versions, next_version
from tfcvr.export.warmup import WARMUP_FILE, read_warmup_requests, warmup_requests, write_warmup_requests
