# The Python half of `stratalake import-feast` (src/cli/import_feast_cmd.cc
# embeds this file and runs it with Feast's own Python: python -c DRIVER REPO).
#
# Loads a Feast repository with Feast's own loader (feature_store.yaml via
# feast.repo_config.load_repo_config, the Python definitions via
# feast.repo_operations.parse_repo) and prints one JSON object on stdout:
#   {"project": str, "definitions": {entities, sources, feature_views,
#    feature_services} in StrataLake's definition format (docs/feature-repository.md),
#    "skipped": [{"kind", "name", "reason"}], "notes": [str],
#    "data": [{"source": name, "files": [Parquet files to ingest into it]}]}
# Everything is converted here, where Feast's classes can answer what an object
# is; the CLI writes the files and reports. Exit 1 with a message on stderr
# when the repository cannot be loaded.
import contextlib
import json
import os
import sys
from datetime import timedelta
from pathlib import Path


def fail(msg):
    sys.stderr.write("error: " + msg + "\n")
    sys.exit(1)


try:
    from feast import types as ft
    from feast.data_source import PushSource, RequestSource
    from feast.feature_view import DUMMY_ENTITY_NAME
    from feast.infra.offline_stores.file_source import FileSource
    from feast.repo_config import load_repo_config
    from feast.repo_operations import parse_repo
    from feast.value_type import ValueType
except Exception as e:  # noqa: BLE001
    fail("this Python cannot import Feast (%s: %s); pass --feast-python with the python of a "
         "virtualenv that has feast installed" % (type(e).__name__, e))

PRIMITIVE = {
    "INT32": "int32", "INT64": "int64", "FLOAT32": "float32", "FLOAT64": "float64",
    "BOOL": "bool", "STRING": "string", "BYTES": "binary", "UNIX_TIMESTAMP": "timestamp",
}
VALUE_TYPES = {
    ValueType.INT32: "int32", ValueType.INT64: "int64", ValueType.FLOAT: "float32",
    ValueType.DOUBLE: "float64", ValueType.BOOL: "bool", ValueType.STRING: "string",
    ValueType.BYTES: "binary", ValueType.UNIX_TIMESTAMP: "timestamp",
}


def type_name(dtype):
    """StrataLake's name for a Feast type, or None (with no equivalent)."""
    if isinstance(dtype, ft.PrimitiveFeastType):
        return PRIMITIVE.get(dtype.name)
    if isinstance(dtype, ft.Array):
        inner = type_name(dtype.base_type)
        return "list<%s>" % inner if inner and not inner.startswith("list") else None
    return None


def duration(td):
    if td is None:
        return "0"
    secs = int(td.total_seconds()) if isinstance(td, timedelta) else int(td)
    if secs <= 0:
        return "0"
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0:
            return "%d%s" % (secs // n, unit)
    return "%ds" % secs


def meta(obj, out):
    if getattr(obj, "description", ""):
        out["description"] = obj.description
    if getattr(obj, "owner", ""):
        out["owner"] = obj.owner
    if getattr(obj, "tags", None):
        out["tags"] = {str(k): str(v) for k, v in obj.tags.items()}
    return out


def main():
    if len(sys.argv) != 2:
        fail("usage: python -c DRIVER FEAST_REPO")
    root = Path(sys.argv[1]).resolve()
    yaml_file = root / "feature_store.yaml"
    if not yaml_file.is_file():
        fail("'%s' is not a Feast repository: it has no feature_store.yaml" % root)
    os.chdir(root)
    sys.path.insert(0, str(root))
    # What the definitions print must not mix with the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            config = load_repo_config(root, yaml_file)
            contents = parse_repo(root)
        except Exception as e:  # noqa: BLE001
            fail("Feast could not load '%s': %s: %s" % (root, type(e).__name__, e))

    skipped, notes, data = [], [], []

    def skip(kind, name, reason):
        skipped.append({"kind": kind, "name": name, "reason": reason})

    # Sources.
    sources, source_names = [], set()
    push_batch = {}  # push source name -> its batch source's name
    for ds in sorted(contents.data_sources, key=lambda d: d.name):
        if isinstance(ds, FileSource):
            fmt = type(ds.file_format).__name__ if ds.file_format else "ParquetFormat"
            if fmt not in ("ParquetFormat", "DeltaFormat"):
                skip("source", ds.name, "file format %s: StrataLake reads Parquet files and "
                     "Delta tables" % fmt)
                continue
            path = FileSource.get_uri_for_file_path(root, ds.path)
            if fmt == "DeltaFormat":
                s = {"name": ds.name, "type": "delta", "path": path}  # read in place
            else:
                # Point-in-time retrieval reads Delta tables: the Parquet data is
                # ingested into bronze/NAME (by the CLI, unless --no-data).
                s = {"name": ds.name, "type": "delta", "path": "bronze/" + ds.name}
                p = Path(path)
                if "://" in path and not path.startswith("file://"):
                    notes.append("source %s: its Parquet data at %s is not copied; load it with "
                                 "`stratalake ingest %s FILE...`" % (ds.name, path, ds.name))
                else:
                    if path.startswith("file://"):
                        p = Path(path[len("file://"):])
                    files = sorted(str(f) for f in p.rglob("*.parquet")) if p.is_dir() else [str(p)]
                    data.append({"source": ds.name, "files": files})
            if ds.timestamp_field:
                s["timestamp_field"] = ds.timestamp_field
            if ds.created_timestamp_column:
                s["created_timestamp_field"] = ds.created_timestamp_column
            if ds.field_mapping:
                s["field_mapping"] = dict(ds.field_mapping)
            if getattr(ds, "date_partition_column", ""):
                notes.append("source %s: date_partition_column '%s' is not needed by StrataLake "
                             "(ignored)" % (ds.name, ds.date_partition_column))
            sources.append(meta(ds, s))
            source_names.add(ds.name)
        elif isinstance(ds, PushSource):
            if ds.batch_source is not None:
                push_batch[ds.name] = ds.batch_source.name
                notes.append("push source %s: feature views that use it read its batch source "
                             "%s; push to StrataLake's feature server instead" %
                             (ds.name, ds.batch_source.name))
            else:
                skip("source", ds.name, "a push source without a batch source")
        elif isinstance(ds, RequestSource):
            skip("source", ds.name, "a request source of Python on-demand feature views "
                 "(declare it under request_sources and write the views as expressions: "
                 "docs/feature-repository.md)")
        else:
            kind = type(ds).__name__
            what = ("a stream source: StrataLake ingests streams through push sources and "
                    "`stratalake ingest`" if kind in ("KafkaSource", "KinesisSource") else
                    "StrataLake reads Parquet files and Delta tables only")
            skip("source", ds.name, "%s: %s" % (kind, what))

    # Entities (their join key's type: value_type, else a view's entity column).
    key_types = {}
    for fv in contents.feature_views:
        for col in getattr(fv, "entity_columns", []) or []:
            t = type_name(col.dtype)
            if t:
                key_types.setdefault(col.name, t)
    entities, entity_names = [], set()
    for e in sorted(contents.entities, key=lambda e: e.name):
        if e.name == DUMMY_ENTITY_NAME:
            continue
        t = VALUE_TYPES.get(e.value_type) or key_types.get(e.join_key)
        if not t:
            skip("entity", e.name, "join key '%s' has type %s, which StrataLake cannot use as a "
                 "key (declare value_type=ValueType.INT64 or STRING)" % (e.join_key, e.value_type))
            continue
        entities.append(meta(e, {"name": e.name,
                                 "join_keys": [{"name": e.join_key, "type": t}]}))
        entity_names.add(e.name)

    # Feature views.
    views, view_names = [], set()
    for fv in sorted(contents.stream_feature_views, key=lambda v: v.name):
        skip("feature_view", fv.name, "a stream feature view: StrataLake has no stream "
             "transformations; push rows to a push source instead")
    for fv in sorted(contents.on_demand_feature_views, key=lambda v: v.name):
        skip("feature_view", fv.name, "an on-demand feature view in Python, which StrataLake "
             "does not run (rewrite it as expressions under on_demand_feature_views: "
             "docs/feature-repository.md)")
    for fv in sorted(contents.feature_views, key=lambda v: v.name):
        if getattr(fv, "udf", None) is not None or getattr(fv, "feature_transformation", None):
            skip("feature_view", fv.name, "a feature view with a transformation, which "
                 "StrataLake does not run")
            continue
        src = fv.batch_source.name if fv.batch_source is not None else None
        src = push_batch.get(src, src)
        if src not in source_names:
            skip("feature_view", fv.name, "its source '%s' was not converted" % src)
            continue
        ents = [e for e in fv.entities if e != DUMMY_ENTITY_NAME]
        if not ents:
            skip("feature_view", fv.name, "a feature view without entities, which StrataLake "
                 "does not have")
            continue
        missing = [e for e in ents if e not in entity_names]
        if missing:
            skip("feature_view", fv.name, "entity '%s' was not converted" % missing[0])
            continue
        feats = []
        for f in fv.features:
            t = type_name(f.dtype)
            if t is None:
                skip("feature", "%s:%s" % (fv.name, f.name), "type %s has no StrataLake "
                     "equivalent" % f.dtype)
                continue
            feat = {"name": f.name, "type": t}
            if f.description:
                feat["description"] = f.description
            feats.append(feat)
        if not feats:
            skip("feature_view", fv.name, "none of its features could be converted")
            continue
        v = {"name": fv.name, "entities": ents, "source": src, "ttl": duration(fv.ttl),
             "online": bool(fv.online), "features": feats}
        views.append(meta(fv, v))
        view_names.add(fv.name)

    # Feature services: all or nothing (a partial service would change what a model gets).
    services = []
    for fs in sorted(contents.feature_services, key=lambda s: s.name):
        items, why = [], None
        for p in fs.feature_view_projections:
            if p.name not in view_names:
                why = "feature view '%s' was not converted" % p.name
                break
            item = {"view": p.name, "features": [f.name for f in p.features]}
            if p.name_alias:
                item["alias"] = p.name_alias
            if p.join_key_map:
                item["join_key_map"] = dict(p.join_key_map)
            items.append(item)
        if why:
            skip("feature_service", fs.name, why)
            continue
        if fs.logging_config is not None:
            notes.append("feature service %s: logging_config is not converted" % fs.name)
        services.append(meta(fs, {"name": fs.name, "features": items}))

    print(json.dumps({
        "project": config.project,
        "definitions": {"entities": entities, "sources": sources, "feature_views": views,
                        "feature_services": services},
        "skipped": skipped,
        "notes": notes,
        "data": data,
    }))


main()
