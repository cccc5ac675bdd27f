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
//        Since the incremental materialize: 'H', the source version and range
//        (start, end) of the materialize run that last folded source rows into the
//        tile, and the ids of the tile's last 16 writes; then EncodeTile's
//        bytes. (Tiles without the header start with 'W'.)
//
// Concurrency: every tile update is a compare-and-set (OnlineStore::Repair
// with the version prefix read as bound), retried on a fresh copy when another
// writer changed the tile in between; a writer tells whether its write landed
// by its id in the header. A stream, materialize and push may write one view
// at the same time without losing events (docs/windows.md).
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

struct WindowMaterialization {
  uint64_t fingerprint = 0;   // the view's tile format (WindowSpec::fingerprint)
  int64_t from_version = -1;  // incremental: the watermark's source version
  int64_t to_version = -1;    // the source version read (-1: no table)
  bool incremental = false;   // only files added since from_version were read
  bool rebuilt = false;       // files were removed since the watermark: the view was rebuilt
  std::string note;           // why a run asked to be incremental was not
  int64_t files_read = 0, files_total = 0, rows_read = 0;
  int64_t tiles_written = 0, tiles_deleted = 0;  // deleted: emptied by the rebuild
  int64_t tile_retries = 0;     // tile writes redone because another writer changed the tile
  int64_t tiles_collected = 0;  // removed by GC (CollectWindowTiles)
  // Rows removed from the source since the watermark, repaired tile by tile
  // (docs/windows.md, "Removes"): the keys and tiles recomputed from the
  // source (tiles_repaired counts those rewritten or removed), the removed
  // rows that are really gone (rows rewritten unchanged, e.g. by OPTIMIZE or
  // a copy-on-write DELETE's untouched rows, cancel out), and the files
  // rewritten without changing rows (dataChange=false), which cost nothing.
  bool keyed_repair = false;
  int64_t keys_repaired = 0, tiles_repaired = 0, rows_removed = 0;
  int64_t files_rewritten = 0;
};

/// Limits of the keyed repair of removed rows (MaterializeWindowView).
struct WindowRepairLimits {
  /// More affected keys than this: the whole range is rebuilt instead.
  int64_t max_keys = 100000;
  /// More removed rows (not rewritten unchanged) than this share of the
  /// table's rows (most of the table rewritten: an overwrite): rebuilt.
  double max_removed_share = 0.5;
};

/// materialize for a window view. Without `since`: reads the source rows of
/// [start_us, end_us] and rebuilds the tiles of that range (a stored tile's
/// events of the range are replaced by the source's rows, except stream
/// events; tiles left empty are removed). With `since` = the watermark's
/// (source version, range end): reads only the files added since then (rows
/// up to end_us) and the older files' rows after the old end, and folds them
/// into their tiles. Files removed since then (DELETE, UPDATE, MERGE, a new
/// deletion vector) are read as they were: their rows that are not in the
/// added files unchanged name the (key, bucket) tiles to repair, which are
/// recomputed from the source now (`keyed_repair`); files rewritten with
/// dataChange=false only (OPTIMIZE) change no tile. Beyond `limits`, or when
/// the removed rows cannot be known, the whole range is rebuilt (`rebuilt`);
/// `note` says which and why. Push sources are always rebuilt (pushed rows
/// are in the tiles already). Then collects expired tiles
/// (CollectWindowTiles at gc_now_us).
///
/// Before writing tiles a run records the source version it read (registry
/// state "materialize-tiles/<view>"): a run that stopped midway is repaired
/// by the next one (a rebuild when files were removed and the source moved
/// on since).
arrow::Result<WindowMaterialization> MaterializeWindowView(
    const repo::FeatureRepository& repo, OnlineStore& store, const registry::Definitions& defs,
    const registry::FeatureView& view, const registry::Source& src, std::optional<int64_t> start_us,
    int64_t end_us, std::optional<std::pair<int64_t, int64_t>> since, int64_t gc_now_us,
    const WindowRepairLimits& limits = {});

/// Tile GC: the time before which no tile is needed at `now_us` or later:
/// now - the view's longest window - the source's allowed lateness. A tile
/// whose bucket ends at or before it (bucket end = (index + 1) * bucket size)
/// holds only events outside every window of every read at now or later.
int64_t WindowGcHorizon(const retrieval::window::WindowSpec& spec, const registry::Source* src,
                        int64_t now_us);

struct TileGcReport {
  int64_t tiles_scanned = 0, tiles_deleted = 0;
  bool more = false;  // max_deletes reached: more expired tiles remain
};

/// Removes the view's tiles that end at or before WindowGcHorizon (and, with
/// `stale_fingerprints`, every tile of another fingerprint: a changed
/// definition's, never read again), at most `max_deletes` of them, each only
/// if unchanged since the scan (a late event written meanwhile keeps it).
arrow::Result<TileGcReport> CollectWindowTiles(OnlineStore& store,
                                               const registry::FeatureView& view,
                                               const registry::Source* src, int64_t now_us,
                                               size_t max_deletes, bool stale_fingerprints);

}  // namespace stratalake::online
