"""StrataLake: a feature store and lakehouse engine (C++ on Apache Arrow).

Tables::

    from stratalake import DeltaTable, write_deltalake
    write_deltalake("lake/orders", df, mode="append", partition_by=["country"])
    DeltaTable("lake/orders").to_pandas()

Features::

    import stratalake
    store = stratalake.init("shop")             # or FeatureStore(repo_path="shop")
    train = store.get_historical_features(entity_df=labels, feature_service="churn_model").to_pandas()
    store.materialize_incremental("now")
    store.get_online_features(["customer_profile:country"], entity_rows=[{"customer_id": 17}]).to_dict()
"""
from __future__ import annotations

import pyarrow  # noqa: F401  (loads the Arrow C++ libraries the engine links against)
import pyarrow.fs  # noqa: F401  (stops the AWS SDK at exit, which s3:// tables start)

from . import _core  # noqa: F401
from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
# `stratalake.Field` is the table schema's field (deltalake's `Field`); the field of a
# feature view's schema (Feast's `Field`) is `stratalake.definitions.Field`.
from .definitions import (DataSource, Entity, FeatureService, FeatureView, FeatureViewProjection,
                          OnDemandFeatureView, RequestSource, TransformationDefinition)
from .feature_store import (FeatureStore, OnlineResponse, Plan, RecreatedDataset, RetrievalJob,
                            SavedDataset, init)
from .schema import ArrayType, Field, MapType, PrimitiveType, Schema, StructType
from .table import DeltaTable, Metadata, TableMerger, TableOptimizer, write_deltalake
from .pipelines import Transformation, transformation

__version__ = "0.1.0"

__all__ = ["DeltaTable", "write_deltalake", "Metadata", "TableMerger", "TableOptimizer",
           "Schema", "Field", "PrimitiveType", "ArrayType", "MapType", "StructType",
           "FeatureStore", "init", "RetrievalJob", "OnlineResponse", "Plan", "SavedDataset",
           "RecreatedDataset", "Entity", "DataSource", "FeatureView", "FeatureService",
           "FeatureViewProjection", "OnDemandFeatureView", "RequestSource", "Transformation",
           "TransformationDefinition", "transformation", *_error_names]
