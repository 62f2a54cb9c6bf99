package source

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseIndexSpec(t *testing.T) {
	tests := []struct {
		name     string
		p        Params
		geom     string
		resLevel int
	}{
		{"quadbin defaults", getParams("name", "t", "spatialDataType", "quadbin"), "quadbin", 6},
		{"h3 defaults", getParams("name", "t", "spatialDataType", "h3"), "h3", 4},
		{"explicit", getParams("name", "t", "spatialDataType", "h3", "spatialDataColumn", "cell", "aggregationResLevel", "3"), "cell", 3},
		{"zero level", getParams("name", "t", "spatialDataType", "quadbin", "aggregationResLevel", "0"), "quadbin", 0},
		{"shifted by tileResolution", getParams("name", "t", "spatialDataType", "quadbin", "tileResolution", "2"), "quadbin", 8},
		{"shifted down", getParams("name", "t", "spatialDataType", "h3", "tileResolution", "0.25"), "h3", 3},
	}
	for _, tt := range tests {
		s, err := ParseSpec("pg", TypeTable, tt.p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if s.Geom != tt.geom || s.ResLevel != tt.resLevel || s.Index == "" {
			t.Errorf("%s: geom %q level %d index %q, want %q %d", tt.name, s.Geom, s.ResLevel, s.Index, tt.geom, tt.resLevel)
		}
		d, err := DecodeKey(s.Key())
		if err != nil || d.Index != s.Index || d.ResLevel != s.ResLevel || d.Geom != s.Geom {
			t.Errorf("%s: key round trip %+v %v", tt.name, d, err)
		}
	}
	for _, lvl := range []string{"-1", "1.5", "11", "x"} {
		if _, err := ParseSpec("pg", TypeTable, getParams("name", "t", "spatialDataType", "quadbin", "aggregationResLevel", lvl)); err == nil {
			t.Errorf("aggregationResLevel %s accepted", lvl)
		}
	}
	// Geometry sources keep their encoding: no index fields in the key.
	s, err := ParseSpec("pg", TypeTable, getParams("name", "t"))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(s)
	if strings.Contains(string(js), `"si"`) || strings.Contains(string(js), `"rl"`) {
		t.Errorf("geo spec JSON %s", js)
	}
}
