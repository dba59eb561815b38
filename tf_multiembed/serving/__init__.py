"""Serving: a TF Serving SavedModel with a raw-feature signature, warm-up records, and REST / gRPC requests.

Example:
    >>> from tf_multiembed import serving
    >>> path = serving.export_for_serving(model, data.feature_encoder(), "export", "ctr")  # doctest: +SKIP
    >>> body = serving.RequestBuilder.from_schema(data.schema).rest_rows(rows)  # doctest: +SKIP
"""

from tf_multiembed.serving.export import (OUTPUT_NAME, ExportMismatchError, check_export_target, export_for_serving,
                                          next_version, remove_dead_staging, serving_module)
from tf_multiembed.serving.requests import (SERVING_SIGNATURE, RequestBuilder, decode_predict_request,
                                            decode_rest_request, rest_url)
from tf_multiembed.serving.warmup import WARMUP_FILE, read_warmup_requests, write_warmup_requests

__all__ = [
    "ExportMismatchError", "OUTPUT_NAME", "RequestBuilder", "SERVING_SIGNATURE", "WARMUP_FILE", "check_export_target",
    "decode_predict_request", "decode_rest_request", "export_for_serving", "next_version", "read_warmup_requests",
    "remove_dead_staging", "rest_url", "serving_module", "write_warmup_requests",
]
