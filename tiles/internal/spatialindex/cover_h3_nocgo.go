//go:build !cgo

package spatialindex

import (
	"github.com/paulmach/orb"

	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

func h3Cover(orb.MultiPolygon, int, Mode, int) ([]Range, error) {
	return nil, clienterr.Errorf(ErrNoH3, "")
}
