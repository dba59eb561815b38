"""The Avazu Click-Through Rate Prediction layout (Kaggle `train`, 40,428,967 lines).

CSV with a header line; `id` is not a feature, `click` is the label, and the other 22 columns are categorical
(`hour` is YYMMDDHH). `tf_multiembed.data.schema.avazu_schema()` reads it with the delimited reader.
"""

COLUMNS = ("id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
           "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
           "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21")
LABEL_COLUMN = "click"
DROPPED_COLUMNS = ("id",)
FEATURE_COLUMNS = tuple(column for column in COLUMNS if column not in DROPPED_COLUMNS + (LABEL_COLUMN,))
