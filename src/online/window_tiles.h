// Window tiles in the online store (docs/windows.md): per entity key and
// bucket, the bucket's events and their partial aggregates
// (retrieval/window.h), written by materialize, the stream and push, and read
// by OnlineService to compute a window view's values at "now".
//
// Key:   <view> 0x00 <join key values as codec.h> 'W' <spec fingerprint,
//        8 bytes big-endian> <bucket index, 8 bytes big-endian, sign flipped>
// Value: 16-byte version prefix whose event time is the tile's revision
//        (1, 2, ...: every rewrite reads the tile and writes revision + 1, so
//        "newer wins" keeps the latest rewrite), then EncodeTile's bytes.
//
// Thread-safety: a tile is read, changed and written back; two processes
// writing the same view at once (a stream and a materialize) may lose one
// side's change to a tile; run materialize for a window view while its stream
// is stopped, or run it again afterwards.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "retrieval/window.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"

namespace stratalake::online {

/// Adds the rows of `data` (the view's join keys, `time_column`, the
/// aggregated and filter columns, by the names views use; with `id_columns`
/// also _kafka_partition and _kafka_offset) to the view's tiles. With
/// `replace` = [lo, hi] (µs, inclusive), a touched tile's stored events of
/// that time range are replaced by the rows given, except stream events
/// (nonzero id), which are kept and deduplicated: materialize rebuilds tiles
/// from the source that way. Without it, the rows are added (stream, push).
arrow::Status WriteWindowEvents(OnlineStore& store, const registry::Definitions& defs,
                                const registry::FeatureView& view, const std::string& time_column,
                                const arrow::Table& data, bool id_columns,
                                std::optional<std::pair<int64_t, int64_t>> replace);

/// For each of `keys` (full view keys, "<view>\0<join keys>", or "" for a
/// null key), the view's encoded value (codec.h, `layout` = MakeLayout(view))
/// at time `now_us`: every aggregation over the window ending at now, from the
/// tiles. Written to (*values)[i]; nullopt for "" keys.
arrow::Status ReadWindowValues(OnlineStore& store, const registry::FeatureView& view,
                               const Layout& layout, std::span<const std::string> keys,
                               int64_t now_us, std::optional<std::string>* values);

/// materialize for a window view: reads the source rows of [start_us, end_us]
/// and rebuilds the tiles they fall in (WriteWindowEvents with replace).
/// Returns the rows read.
arrow::Result<int64_t> MaterializeWindowView(const repo::FeatureRepository& repo,
                                             OnlineStore& store, const registry::Definitions& defs,
                                             const registry::FeatureView& view,
                                             const registry::Source& src,
                                             std::optional<int64_t> start_us, int64_t end_us);

}  // namespace stratalake::online
