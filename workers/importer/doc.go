// Package importer loads a geospatial file into a PostGIS table: the
// engine behind the import worker (broker topic "imports"), the imports
// API and `meridian import FILE --table T`.
//
// One call, Import, takes a file on local disk and leaves either the
// complete new table in place or nothing at all. Layers lists the layers
// of a multi-layer source; CleanupStale sweeps staging tables that crashed
// imports left; GenerateGeoJSON builds big test inputs for benchmarks.
//
// # Formats
//
// GeoJSON (FeatureCollection, bare Feature or geometry, newline-delimited,
// RFC 8142 text sequences) and CSV (latitude/longitude columns, or one
// column of WKT/EWKT, WKB/EWKB hex or GeoJSON) are parsed natively and
// streamed: one goroutine decodes (encoding/json token by token, one
// feature in memory; encoding/csv with a reused record), another COPYs
// binary rows into PostgreSQL, and a third inflates gzip input ahead of the
// parser. Memory is bounded whatever the file size (a 1 GiB GeoJSON loads
// in about 31 MB RSS).
//
// Every other format goes through GDAL's ogr2ogr: zipped Shapefile,
// GeoPackage, KML/KMZ, FlatGeobuf, GPX, TopoJSON, GML. The password
// reaches ogr2ogr through PGPASSWORD, never its command line, and drivers
// that read other files or the network (VRT, WFS…) are disabled.
//
// gzip input is accepted for every format. Zip archives are unpacked into
// a temp dir with each entry's path checked (no "..", absolute path or
// link) and the expanded size and ratio counted on the bytes really
// inflated, not on the headers.
//
// # Column types
//
// Native loads infer each column's type from every value, never from a
// sample alone: bigint, double precision, numeric (integers beyond int64),
// boolean, date, timestamp, timestamptz, jsonb (GeoJSON objects and
// arrays), else text. A column gets the least type that accepts all its
// values (int+float → double precision, anything+text → text). A value
// counts as an integer only in canonical form: "007", "+5" and "-0" stay
// text, so codes keep their zeros. Empty CSV fields are NULL. TypeHints
// override the inference.
//
// Lat/lon CSVs in EPSG:4326 take a direct path: rows are COPYed typed
// into a table of the final shape (types guessed from the first 20,000
// rows), so finishing needs no rewrite. Each value is still classified;
// an integer column meeting a float or text widens in place (exact, since
// integers are canonical), any other mismatch restarts the load through
// the general path, and columns empty in the sample are narrowed at the
// end. Other loads stage every value as text in an UNLOGGED table and
// cast once, to the inferred type, while building the final table.
//
// # Geometry
//
// Geometries are written as EWKB by package geomenc, which keeps Z and M
// and refuses what PostGIS would refuse (one-position lines, short rings)
// with the feature or line at fault. Finishing repairs invalid geometries
// with ST_MakeValid (counted in Result.InvalidFixed and the warnings),
// keeping their dimension; reprojects to EPSG:4326 from the file's SRID
// (a legacy GeoJSON "crs", an EWKT/EWKB SRID, the layer's CRS for GDAL) or
// Options.SourceSRID; promotes to Multi* when single and multi geometries
// of one family mix (or the source declares Multi*); and falls back to the
// generic geometry type, with a warning, for collections and mixed
// families. Data taken as EPSG:4326 must lie within ±180/±90.
//
// # Atomicity and idempotence
//
// An import holds a session advisory lock on its ID for its whole run and
// works in tables named after that ID: _mi_<id>_s (UNLOGGED staging) and
// _mi_<id>_n (the table being built: cartodb_id identity primary key,
// geom with a GiST index, ANALYZEd). The swap is one transaction: the old
// table is locked, dropped and the new one renamed into place, so readers
// see the old table or the new one, never a half. "append" inserts in one
// statement instead. On any failure the _mi_ tables are dropped (on a
// detached context); after a crash (kill -9) they stay until the next run
// with the same ImportID drops them first, or until CleanupStale. With an
// ImportID, the swap also records the ID in <schema>._meridian_imports in
// the same transaction, and a later run with that ID returns
// Result.AlreadyApplied instead of importing again: at-least-once
// delivery gives exactly-once tables. A run started while another with the
// same ID is alive gets ErrImportRunning (nack and retry later; the lock
// of a killed process goes when PostgreSQL notices the dead connection).
//
// # Errors
//
// Problems with the file are *InputError values that wrap one sentinel
// (ErrMalformed, ErrEncoding, ErrZipBomb, ErrUnsafePath, ErrEmpty,
// ErrTooLarge, ErrNoGeometry, ErrNoFeatures, ErrOutOfRange,
// ErrLayerRequired, ErrUnsupportedFormat) and say where: byte offset in the
// (decompressed) file, line, feature index, column. Map them to HTTP 400
// with err.Error() as the message; ErrInvalidOptions is a 400 too,
// ErrTableExists a 409, ErrImportRunning a retry, anything else a 500.
//
// # Speed
//
// Measured with cmd importbench against ogr2ogr -f PostgreSQL, same files,
// same cluster, runs interleaved, medians of five (two shared cores,
// PostgreSQL 15 + PostGIS 3.3 on the same machine):
//
//	GeoNames postal codes, CSV.gz, 89.6 MB, 1,201,340 points
//	  importer  4.31 s  279k rows/s  26 MB RSS (typed columns, PK, GiST, ANALYZE)
//	  ogr2ogr  10.51 s  114k rows/s  55 MB RSS (text columns; 10.73 s typed)
//	Natural Earth admin-1, GeoJSON.gz, 54 MB, 4,854 polygons
//	  importer  1.71 s  31.5 MB/s    31 MB RSS (with the validity repair)
//	  ogr2ogr   4.24 s  12.7 MB/s    96 MB RSS
//	1 GiB GeoJSON (admin-1 features repeated, 96,999), one run each
//	  importer 32.2 s   33 MB/s      32 MB RSS
//	  ogr2ogr  81.1 s   13 MB/s      96 MB RSS
//
// The wins come from parsing and COPYing in parallel, binary COPY (raw
// EWKB), one allocation per CSV row (encoding/csv's line), uncompressed
// TOAST for geometry (pglz costs most of an INSERT on polygons and saves
// 3%), the direct path for point CSVs, and building the two indexes at
// once.
package importer
