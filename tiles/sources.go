package tiles

import "github.com/meridian-gis/meridian/tiles/internal/engine"

// compiled is a source ready to serve (package engine).
type compiled = engine.Source
