package importer_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/meridian-gis/meridian/workers/importer"
	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
)

func TestGenerateGeoJSON(t *testing.T) {
	path := data(t, "fixtures/geojson/tiger_roads_manhattan.geojson")
	var out bytes.Buffer
	n, written, err := importer.GenerateGeoJSON(context.Background(), &out, func() (io.ReadCloser, error) { return os.Open(path) }, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if written != int64(out.Len()) || written < 4<<20 || n <= 8333 {
		t.Errorf("GenerateGeoJSON = %d features, %d bytes (buffer %d); want > 8333 features, >= 4 MiB", n, written, out.Len())
	}
	r := geojsonstream.NewReader(&out, geojsonstream.Options{})
	var got int64
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the generated file does not parse at feature %d: %v", got+1, err)
		}
		got++
	}
	if got != n {
		t.Errorf("the generated file has %d features, GenerateGeoJSON said %d", got, n)
	}
}
