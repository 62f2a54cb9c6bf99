package importer

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels for errors.Is. Every problem with the uploaded file is an
// *InputError that wraps exactly one of the input sentinels (the first
// group); the API answers those with 400 and InputError.Error() as the
// message. The other sentinels describe the request or the destination.
var (
	// ErrEmpty: the file has no bytes.
	ErrEmpty = errors.New("file is empty")
	// ErrTooLarge: the file (or its decompressed content) exceeds a limit.
	ErrTooLarge = errors.New("file too large")
	// ErrZipBomb: decompression expands far beyond the compressed size.
	ErrZipBomb = errors.New("archive expands beyond the allowed ratio (zip bomb?)")
	// ErrUnsafePath: an archive entry's name escapes the archive
	// ("../x", "/etc/x", a link).
	ErrUnsafePath = errors.New("archive entry path escapes the archive")
	// ErrUnsupportedFormat: the format is unknown or not importable.
	ErrUnsupportedFormat = errors.New("unsupported file format")
	// ErrMalformed: the file is not valid in its format (bad JSON, CSV
	// field counts, geometry that cannot be parsed, …).
	ErrMalformed = errors.New("malformed file")
	// ErrEncoding: text that is not valid UTF-8 (or is UTF-16).
	ErrEncoding = errors.New("invalid text encoding")
	// ErrNoGeometry: nothing in the file holds a geometry (a CSV without
	// coordinate or geometry columns, a GDAL layer without geometry).
	ErrNoGeometry = errors.New("no geometry found")
	// ErrNoFeatures: the file (or chosen layer) holds no rows.
	ErrNoFeatures = errors.New("no features")
	// ErrOutOfRange: coordinates outside longitude ±180 / latitude ±90 for
	// data taken as EPSG:4326 (usually a projected file without CRS
	// information: set Options.SourceSRID).
	ErrOutOfRange = errors.New("coordinates out of range")
	// ErrLayerRequired: the source has several layers and Options.Layer
	// does not name one of them.
	ErrLayerRequired = errors.New("choose a layer")

	// ErrInvalidOptions: Options are unusable (bad table name, type hint…).
	ErrInvalidOptions = errors.New("importer: invalid options")
	// ErrTableExists: the destination exists and IfExists is "fail".
	ErrTableExists = errors.New("importer: table already exists")
	// ErrImportRunning: another process runs an import with the same
	// ImportID right now (retry later).
	ErrImportRunning = errors.New("importer: an import with this ID is already running")
)

// InputError reports a problem with the uploaded file and where it is.
// Line and Feature are 1-based, 0 when unknown; Offset is a 0-based byte
// offset, meaningful only when HasOffset.
type InputError struct {
	// Kind is the sentinel this error wraps (ErrMalformed, ErrEncoding…).
	Kind error
	// Offset is the 0-based byte offset in the (decompressed) file;
	// meaningful when HasOffset.
	Offset    int64
	HasOffset bool
	// Line is the 1-based line number, 0 when unknown.
	Line int64
	// Feature is the 1-based feature (GeoJSON, GDAL) index, 0 when unknown.
	Feature int64
	// Column names the CSV column or property concerned, if any.
	Column string
	// Reason is the human explanation.
	Reason string
	// Err is the underlying cause, if any.
	Err error
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	var where []string
	if e.Line > 0 {
		where = append(where, fmt.Sprintf("line %d", e.Line))
	}
	if e.Feature > 0 {
		where = append(where, fmt.Sprintf("feature %d", e.Feature))
	}
	if e.Column != "" {
		where = append(where, fmt.Sprintf("column %q", e.Column))
	}
	if e.HasOffset {
		where = append(where, fmt.Sprintf("byte %d", e.Offset))
	}
	if len(where) > 0 {
		b.WriteString(" (at ")
		b.WriteString(strings.Join(where, ", "))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause.
func (e *InputError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func inputErr(kind error, format string, args ...any) *InputError {
	return &InputError{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// IsInputError reports whether err is about the uploaded file (HTTP 400).
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}
