package ldsload

import (
	"math"
	"strconv"
	"strings"
)

// Travel profiles. Car speeds come from the maxspeed tag when it parses,
// else from the road class; car traffic is kept off paths, footways,
// cycleways, steps and the like, and honours one-ways (oneway=yes/1/true
// or -1, roundabouts, motorways). Walking is 5 km/h on every class but
// motorways and trunk roads, in both directions. Turn restrictions are
// not modelled (documented in the package doc).

// carSpeedKmh is the default car speed of a highway class; absent: no cars.
var carSpeedKmh = map[string]float64{
	"motorway": 100, "motorway_link": 50,
	"trunk": 80, "trunk_link": 45,
	"primary": 65, "primary_link": 40,
	"secondary": 55, "secondary_link": 35,
	"tertiary": 45, "tertiary_link": 30,
	"unclassified": 40, "road": 35,
	"residential": 30, "living_street": 10,
	"service": 15,
}

// noWalk are classes pedestrians may not use.
var noWalk = map[string]bool{"motorway": true, "motorway_link": true, "trunk": true, "trunk_link": true}

// walkable are classes that are neither roads for cars nor forbidden to
// walkers.
var walkable = map[string]bool{
	"footway": true, "path": true, "pedestrian": true, "steps": true, "track": true,
	"cycleway": true, "bridleway": true,
}

// walkSpeed is 5 km/h in metres per second.
const walkSpeed = 5.0 / 3.6

// routable reports whether a highway class belongs in the graph.
func routable(highway string) bool {
	_, car := carSpeedKmh[highway]
	return car || walkable[highway]
}

// parseMaxspeed reads "50", "50 km/h", "30 mph"; 0 when it does not parse.
func parseMaxspeed(s string) float64 {
	s = strings.TrimSpace(strings.ToLower(s))
	mph := strings.HasSuffix(s, "mph")
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(s, "mph"), "km/h"))
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 200 {
		return 0
	}
	if mph {
		v *= 1.609344
	}
	return v
}

// onewayOf returns 1 (forward only), -1 (backward only) or 0.
func onewayOf(tags map[string]string) int {
	switch tags["oneway"] {
	case "yes", "1", "true":
		return 1
	case "-1", "reverse":
		return -1
	case "no", "0", "false":
		return 0
	}
	if tags["junction"] == "roundabout" || tags["highway"] == "motorway" {
		return 1
	}
	return 0
}

// edgeCosts returns the car (forward, reverse) and walk costs in seconds
// of an edge of length metres; -1 where the profile may not go.
func edgeCosts(tags map[string]string, length float64) (car, carRev, walk float64) {
	hw := tags["highway"]
	car, carRev, walk = -1, -1, -1
	if speed, ok := carSpeedKmh[hw]; ok && tags["motor_vehicle"] != "no" && tags["access"] != "no" {
		if ms := parseMaxspeed(tags["maxspeed"]); ms > 0 {
			speed = ms
		}
		c := length / (speed / 3.6)
		switch onewayOf(tags) {
		case 1:
			car = c
		case -1:
			carRev = c
		default:
			car, carRev = c, c
		}
	}
	if !noWalk[hw] && tags["foot"] != "no" && tags["access"] != "no" {
		walk = length / walkSpeed
	}
	return car, carRev, walk
}

// haversine is the great-circle distance in metres.
func haversine(lon1, lat1, lon2, lat2 float64) float64 {
	const r = 6371008.8
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}
