//go:build !cgo

package main

import "testing"

// Without cgo (h3-go is C) the compat test has no H3 table: carto.mjs
// skips its h3 checks.
const (
	compatH3Table    = ""
	compatH3Query    = ""
	compatH3PickTile = ""
)

func h3Holds(id string, lon, lat float64) bool { return false }

func loadCountriesH3(t *testing.T, u *upServer) (rows, inEurope int) { return 0, 0 }
