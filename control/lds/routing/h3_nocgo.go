//go:build !cgo

package routing

// IsolineCells needs the H3 library, which is C: a binary built with
// CGO_ENABLED=0 answers ErrNoH3.
func IsolineCells(origin Point, iso []Isoline, res int) ([]CellIsoline, error) {
	if res < MinH3Res || res > MaxH3Res {
		return nil, ErrBadResolution
	}
	return nil, ErrNoH3
}
