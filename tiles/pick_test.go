package tiles

import (
	"testing"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
)

// Picking as CARTO's clients do it: tiles asked for _carto_feature_id
// carry one per feature, equal in every tile the feature crosses; the pick
// model returns the columns of the features named by those ids, and the
// other models restrict themselves to them (featureIds + geometryType).
func TestPickByFeatureID(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, table, column, value, dataType string
		c                                    tile.Coord
	}{
		{"points", "places", "name", "Paris", "points", tile.At(2.35, 48.85, 5)},
		{"polygons", "admin1", "iso_3166_2", "FR-75", "polygons", tile.At(2.35, 48.85, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", tc.table, "columns", tc.column+","+mvt.FeatureIDProp), e.all)
			r := e.get(expand(tmpl, tc.c.Z, tc.c.X, tc.c.Y), bearer(e.all), "Accept-Encoding: gzip")
			if r.status != 200 {
				t.Fatalf("tile: %d %s", r.status, r.body)
			}
			var id string
			for _, l := range decodeTile(t, r) {
				for _, f := range l.Features {
					// value "": the first feature with a value.
					if v, _ := f.Properties[tc.column].(string); v != "" && (v == tc.value || tc.value == "" && id == "") {
						id, _ = f.Properties[mvt.FeatureIDProp].(string)
						tc.value = v
					}
				}
			}
			if len(id) != 16 {
				t.Fatalf("feature %s=%s: _carto_feature_id %q, want 16 hex digits", tc.column, tc.value, id)
			}
			// The same feature in a neighbouring, deeper tile has the same id.
			deeper := tile.At(2.35, 48.85, 8)
			r = e.get(expand(tmpl, deeper.Z, deeper.X, deeper.Y), bearer(e.all), "Accept-Encoding: gzip")
			if r.status != 200 || !hasFeature(decodeTile(t, r), mvt.FeatureIDProp, id) {
				t.Errorf("tile %v: no feature with id %s (%d)", deeper, id, r.status)
			}

			r = e.model("pick", wreq{typ: "table", source: "public." + tc.table, params: map[string]any{
				"columns": []string{tc.column}, "dataType": tc.dataType, "featureIds": []string{id}, "z": 5, "limit": 1000, "tileResolution": 0.5}})
			if r.status != 200 {
				t.Fatalf("pick: %d %s", r.status, r.body)
			}
			m := r.json(t)
			rows, _ := m["rows"].([]any)
			if len(rows) != 1 {
				t.Fatalf("pick rows = %s, want one", r.body)
			}
			row := rows[0].(map[string]any)
			if row[mvt.FeatureIDProp] != id || row[tc.column] != tc.value || len(row) != 2 {
				t.Errorf("pick row = %v, want %s=%s with its id", row, tc.column, tc.value)
			}
			if md, _ := m["metadata"].(map[string]any); md == nil || num(md["total"]) != 1 {
				t.Errorf("pick metadata = %v, want total 1", m["metadata"])
			}

			r = e.model("formula", wreq{typ: "table", source: "public." + tc.table, params: map[string]any{
				"column": "*", "operation": "count", "featureIds": []string{id}, "geometryType": tc.dataType}})
			if r.status != 200 || num(r.json(t)["rows"].([]any)[0].(map[string]any)["value"]) != 1 {
				t.Errorf("formula over the feature: %d %s, want a count of 1", r.status, r.body)
			}
		})
	}
}
