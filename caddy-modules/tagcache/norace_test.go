//go:build !race

package tagcache

const raceEnabled = false
