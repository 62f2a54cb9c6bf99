package geomenc

import (
	"github.com/meridian-gis/meridian/workers/importer/internal/jsonscan"
)

// GeoJSON resets b and builds the GeoJSON geometry object raw. A JSON null
// (a feature without geometry) gives ok=false and no error. Positions take
// their dimension from the first position of the geometry: [x, y] gives
// 2D, [x, y, z, ...] gives XYZ (further elements are ignored, as RFC 7946
// asks); later positions with fewer elements get z = 0.
func (b *Builder) GeoJSON(raw []byte) (ok bool, err error) {
	b.Reset()
	if jsonscan.IsNull(raw, 0) {
		return false, nil
	}
	if _, err := b.geojsonGeometry(raw, 0, true); err != nil {
		return false, err
	}
	return true, nil
}

type geomMembers struct {
	typ         []byte
	coords      int // start of "coordinates" value, -1 if absent
	geometries  int // start of "geometries" value, -1 if absent
	end         int
	coordsIsNil bool
}

func geojsonMembers(raw []byte, i int) (geomMembers, error) {
	m := geomMembers{coords: -1, geometries: -1}
	end, err := jsonscan.Object(raw, i, func(key []byte, esc bool, vs, ve int) error {
		switch string(key) {
		case "type":
			s, _, _, err := jsonscan.String(raw, vs)
			if err != nil {
				return invalid(`geometry "type" is not a string`)
			}
			m.typ = s
		case "coordinates":
			m.coords = vs
			m.coordsIsNil = jsonscan.IsNull(raw, vs)
		case "geometries":
			m.geometries = vs
		}
		return nil
	})
	if err != nil {
		if err == jsonscan.ErrSyntax {
			return m, invalid("geometry is not a JSON object")
		}
		return m, err
	}
	m.end = end
	return m, nil
}

// geojsonDims finds the number of ordinates (2 or 3) of the first position
// of the geometry at raw[i:]; 2 when it has none.
func geojsonDims(raw []byte, i int) (int, error) {
	m, err := geojsonMembers(raw, i)
	if err != nil {
		return 0, err
	}
	if m.geometries >= 0 {
		dims := 0
		_, err := jsonscan.Array(raw, m.geometries, func(s int) (int, error) {
			end, err := jsonscan.Value(raw, s)
			if err == nil && dims == 0 {
				var d int
				if d, err = geojsonDims(raw, s); d != 0 {
					dims = d
				}
			}
			return end, err
		})
		if err != nil || dims == 0 {
			return 2, nil // errors surface when the geometry is built
		}
		return dims, nil
	}
	if m.coords < 0 || m.coordsIsNil {
		return 2, nil
	}
	return coordsDims(raw, m.coords), nil
}

func typeFromName(name []byte) (Type, error) {
	switch string(name) {
	case "Point":
		return Point, nil
	case "LineString":
		return LineString, nil
	case "Polygon":
		return Polygon, nil
	case "MultiPoint":
		return MultiPoint, nil
	case "MultiLineString":
		return MultiLineString, nil
	case "MultiPolygon":
		return MultiPolygon, nil
	case "GeometryCollection":
		return GeometryCollection, nil
	case "":
		return 0, invalid(`geometry has no "type"`)
	}
	return 0, invalid("unknown geometry type %q", name)
}

// coordsDims counts the ordinates of the first position under the
// "coordinates" value at raw[i]: 3 for XYZ, else 2.
func coordsDims(raw []byte, j int) int {
	for {
		j = jsonscan.Space(raw, j)
		if j >= len(raw) || raw[j] != '[' {
			return 2
		}
		k := jsonscan.Space(raw, j+1)
		if k < len(raw) && raw[k] == '[' {
			j = k
			continue
		}
		n := 0
		_, err := jsonscan.Array(raw, j, func(s int) (int, error) {
			n++
			return jsonscan.Value(raw, s)
		})
		if err != nil || n < 3 {
			return 2
		}
		return 3
	}
}

// geojsonGeometry builds the geometry object at raw[i] and returns the
// index after it. When "type" comes before "coordinates" (the usual
// order) the coordinates are parsed in the same pass that walks the
// object. outer is true for the outermost geometry, whose first position
// sets the dimension.
func (b *Builder) geojsonGeometry(raw []byte, i int, outer bool) (int, error) {
	i = jsonscan.Space(raw, i)
	if i >= len(raw) || raw[i] != '{' {
		return i, invalid("geometry is not a JSON object")
	}
	var (
		t          Type
		typeName   []byte
		coords     = -1
		geometries = -1
		built      bool
	)
	build := func(at int) (int, error) {
		if outer {
			b.setDims(coordsDims(raw, at) == 3, false)
		}
		if err := b.begin(t); err != nil {
			return at, err
		}
		end, err := b.geojsonCoords(raw, at, t)
		if err != nil {
			if err == jsonscan.ErrSyntax {
				err = invalid("%s coordinates are not nested arrays of numbers", t)
			}
			return end, err
		}
		built = true
		return end, b.end(t)
	}
	j := jsonscan.Space(raw, i+1)
	if j < len(raw) && raw[j] == '}' {
		return j + 1, invalid(`geometry has no "type"`)
	}
	for {
		key, kend, _, err := jsonscan.String(raw, jsonscan.Space(raw, j))
		if err != nil {
			return kend, invalid("geometry is not a JSON object")
		}
		j = jsonscan.Space(raw, kend)
		if j >= len(raw) || raw[j] != ':' {
			return j, invalid("geometry is not a JSON object")
		}
		vs := jsonscan.Space(raw, j+1)
		ve := -1
		switch string(key) {
		case "type":
			s, e, _, err := jsonscan.String(raw, vs)
			if err != nil {
				return e, invalid(`geometry "type" is not a string`)
			}
			typeName, ve = s, e
			if t, err = typeFromName(s); err != nil {
				return e, err
			}
		case "coordinates":
			coords = vs
			if t != 0 && t != GeometryCollection && !jsonscan.IsNull(raw, vs) {
				if ve, err = build(vs); err != nil {
					return ve, err
				}
			}
		case "geometries":
			geometries = vs
		}
		if ve < 0 {
			if ve, err = jsonscan.Value(raw, vs); err != nil {
				return ve, invalid("geometry is not a JSON object")
			}
		}
		j = jsonscan.Space(raw, ve)
		if j >= len(raw) {
			return j, invalid("geometry is not a JSON object")
		}
		if raw[j] == '}' {
			j++
			break
		}
		if raw[j] != ',' {
			return j, invalid("geometry is not a JSON object")
		}
		j++
	}
	if t == 0 {
		_, err := typeFromName(typeName)
		return j, err
	}
	if built {
		return j, nil
	}
	if t == GeometryCollection {
		if geometries < 0 {
			return j, invalid(`GeometryCollection has no "geometries" array`)
		}
		if outer {
			d, _ := geojsonDims(raw, i)
			b.setDims(d == 3, false)
		}
		if err := b.begin(t); err != nil {
			return j, err
		}
		_, err := jsonscan.Array(raw, geometries, func(s int) (int, error) {
			return b.geojsonGeometry(raw, s, false)
		})
		if err == jsonscan.ErrSyntax {
			err = invalid(`"geometries" is not an array of geometry objects`)
		}
		if err != nil {
			return j, err
		}
		return j, b.end(t)
	}
	if coords < 0 || jsonscan.IsNull(raw, coords) {
		return j, invalid("%s has no coordinates", t)
	}
	_, err := build(coords)
	return j, err
}

// geojsonCoords writes the body of a geometry of type t whose
// "coordinates" value starts at raw[i], and returns the index after it.
func (b *Builder) geojsonCoords(raw []byte, i int, t Type) (int, error) {
	switch t {
	case Point:
		// An empty array is POINT EMPTY.
		j := jsonscan.Space(raw, i)
		if k := jsonscan.Space(raw, j+1); j < len(raw) && raw[j] == '[' && k < len(raw) && raw[k] == ']' {
			b.emptyPoint()
			return k + 1, nil
		}
		return b.geojsonPosition(raw, i)
	case LineString:
		return jsonscan.Array(raw, i, func(s int) (int, error) { return b.geojsonPosition(raw, s) })
	case Polygon:
		return jsonscan.Array(raw, i, func(s int) (int, error) {
			b.beginRing()
			end, err := jsonscan.Array(raw, s, func(s int) (int, error) { return b.geojsonPosition(raw, s) })
			if err != nil {
				return end, err
			}
			return end, b.endRing()
		})
	case MultiPoint, MultiLineString, MultiPolygon:
		st := t.Single()
		return jsonscan.Array(raw, i, func(s int) (int, error) {
			if err := b.begin(st); err != nil {
				return s, err
			}
			end, err := b.geojsonCoords(raw, s, st)
			if err != nil {
				return end, err
			}
			return end, b.end(st)
		})
	}
	return i, invalid("unexpected type %s", t)
}

func (b *Builder) geojsonPosition(raw []byte, i int) (int, error) {
	var c [4]float64
	n := 0
	end, err := jsonscan.Array(raw, i, func(s int) (int, error) {
		v, end, err := jsonscan.Number(raw, s)
		if err != nil {
			return end, invalid("position holds a non-number")
		}
		if n < b.dims {
			c[n] = v
		}
		n++
		return end, nil
	})
	if err != nil {
		return end, err
	}
	if n < 2 {
		return end, invalid("position has %d numbers, needs at least 2", n)
	}
	return end, b.position(c[:])
}
