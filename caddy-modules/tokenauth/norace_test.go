//go:build !race

package tokenauth

const raceEnabled = false
