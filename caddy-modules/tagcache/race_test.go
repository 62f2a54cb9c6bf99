//go:build race

package tagcache

const raceEnabled = true
