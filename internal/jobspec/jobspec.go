// Package jobspec is the contract the control plane and the workers
// share about imports and batch SQL jobs: the statuses kept in the
// imports and jobs tables, the options an import carries from the API to
// the worker (imports.options), and the formats the importer accepts.
// Control writes these, workers read them: they live once, here.
package jobspec

// Job statuses, as kept in the imports and jobs tables (the API shows
// them as they are).
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusSuccess   = "success"
	StatusFailure   = "failure"
	StatusCancelled = "cancelled"
)

// Terminal reports whether status is final (success, failure or
// cancelled).
func Terminal(status string) bool {
	return status == StatusSuccess || status == StatusFailure || status == StatusCancelled
}

// ImportOptions is the JSON kept in imports.options: written by the
// control plane from the API request, read by the worker.
type ImportOptions struct {
	// IfExists is fail, replace or append (empty: fail).
	IfExists string `json:"if_exists,omitempty"`
	// Format forces a format (one of Formats); empty: detected.
	Format string `json:"format,omitempty"`
	// Layer picks a layer of a multi-layer source (GeoPackage, TopoJSON,
	// KML folders...).
	Layer string `json:"layer,omitempty"`
	// SourceSRID overrides the source's coordinate reference system.
	SourceSRID int `json:"source_srid,omitempty"`
	// GeometryColumns says where a CSV keeps its geometry.
	GeometryColumns *GeometryColumns `json:"geometry_columns,omitempty"`
	// TypeHints forces column types (column name → PostgreSQL type).
	TypeHints map[string]string `json:"type_hints,omitempty"`
	// CSVDelimiter is one character; empty: detected.
	CSVDelimiter string `json:"csv_delimiter,omitempty"`
}

// GeometryColumns says where a CSV keeps its geometry: Latitude and
// Longitude, or Column.
type GeometryColumns struct {
	Latitude  string `json:"latitude,omitempty"`
	Longitude string `json:"longitude,omitempty"`
	Column    string `json:"column,omitempty"`
}

// Formats are the format names ImportOptions.Format accepts.
var Formats = map[string]bool{"geojson": true, "geojsonseq": true, "csv": true, "shapefile": true, "gpkg": true,
	"kml": true, "kmz": true, "fgb": true, "gpx": true, "topojson": true, "gml": true}
