package importer

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
)

// GenerateGeoJSON writes to w a FeatureCollection of about target bytes
// made by repeating the features of a real GeoJSON source, streaming:
// open is called once per pass over the source, and memory holds one
// feature. It returns the features and bytes written. For benchmarks
// (memory bounds, throughput on files larger than the data at hand).
func GenerateGeoJSON(ctx context.Context, w io.Writer, open func() (io.ReadCloser, error), target int64) (features, written int64, err error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	io.WriteString(cw, `{"type":"FeatureCollection","features":[`+"\n")
	for pass := 0; cw.n < target; pass++ {
		rc, err := open()
		if err != nil {
			return features, cw.n, fmt.Errorf("opening the source: %w", err)
		}
		r := geojsonstream.NewReader(rc, geojsonstream.Options{})
		got := 0
		for cw.n < target {
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return features, cw.n, fmt.Errorf("reading the source: %w", err)
			}
			if features > 0 {
				io.WriteString(cw, ",\n")
			}
			io.WriteString(cw, `{"type":"Feature","properties":`)
			if f.Props != nil {
				cw.Write(f.Props)
			} else {
				io.WriteString(cw, "{}")
			}
			io.WriteString(cw, `,"geometry":`)
			if f.Geometry != nil {
				cw.Write(f.Geometry)
			} else {
				io.WriteString(cw, "null")
			}
			io.WriteString(cw, "}")
			features++
			got++
			if features%1024 == 0 {
				if err := ctx.Err(); err != nil {
					rc.Close()
					return features, cw.n, err
				}
			}
		}
		rc.Close()
		if got == 0 {
			return features, cw.n, fmt.Errorf("the source has no features")
		}
	}
	io.WriteString(cw, "\n]}\n")
	if err := bw.Flush(); err != nil {
		return features, cw.n, err
	}
	return features, cw.n, cw.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
