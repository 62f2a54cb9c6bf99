package routing

import (
	"errors"
	"fmt"
)

// H3 limits: the resolutions an isoline may be filled at, the default,
// and the most cells one answer may hold (an isoline of an hour's drive
// at resolution 12 would be millions).
const (
	MinH3Res     = 0
	MaxH3Res     = 12
	DefaultH3Res = 8
	MaxH3Cells   = 200_000
)

// H3 isoline errors: ErrBadResolution and ErrTooManyCells are request
// errors; ErrNoH3 means this binary was built without cgo, which the H3
// library (C) needs.
var (
	ErrBadResolution = fmt.Errorf("resolution must be an integer from %d to %d", MinH3Res, MaxH3Res)
	ErrTooManyCells  = fmt.Errorf("the isolines would hold more than %d H3 cells at this resolution; ask for a coarser resolution or smaller ranges", MaxH3Cells)
	ErrNoH3          = errors.New("H3 cells need a binary built with cgo")
)

// CellIsoline is one range of an isoline as the H3 cells whose centres
// the range's polygon covers (always at least the origin's cell).
type CellIsoline struct {
	Range      float64   `json:"range"`
	RangeType  RangeType `json:"range_type"`
	Resolution int       `json:"resolution"`
	Cells      []string  `json:"cells"`
}
