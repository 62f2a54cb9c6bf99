package importer

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// maxZipEntries caps the entries of an archive (a million empty entries
// is a denial of service of its own).
const maxZipEntries = 10000

// unpack extracts the zip (or KMZ) in into a temp dir, checking every
// entry's path and the real expanded size and ratio while inflating, then
// resolves the importable file inside.
func (j *job) unpack(ctx context.Context, in *input, format string) (*input, error) {
	zr, err := zip.OpenReader(in.path)
	if err != nil {
		return nil, &InputError{Kind: ErrMalformed, Reason: "bad zip archive: " + err.Error(), Err: err}
	}
	defer zr.Close()
	if len(zr.File) > maxZipEntries {
		return nil, inputErr(ErrTooLarge, "the archive has %d entries; the limit is %d", len(zr.File), maxZipEntries)
	}
	dir, err := os.MkdirTemp(j.opts.TempDir, "meridian-import-")
	if err != nil {
		return nil, fmt.Errorf("creating a temp dir: %w", err)
	}
	j.tmp = append(j.tmp, dir)

	var expanded int64
	var candidates []string
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rel, err := safeEntryPath(f)
		if err != nil {
			return nil, err
		}
		if rel == "" || f.FileInfo().IsDir() || ignoredEntry(rel) {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, fmt.Errorf("unpacking: %w", err)
		}
		n, err := j.extract(f, dst, expanded, in)
		expanded += n
		if err != nil {
			return nil, err
		}
		j.progress(Progress{Phase: "reading", BytesRead: 0, BytesTotal: in.size}, false)
		if _, ok := extFormats[strings.ToLower(path.Ext(rel))]; ok {
			candidates = append(candidates, rel)
		}
	}
	if format == FormatKMZ {
		var kml []string
		for _, c := range candidates {
			if strings.EqualFold(path.Ext(c), ".kml") {
				kml = append(kml, c)
			}
		}
		candidates = kml
	} else if j.opts.Format != "" {
		var keep []string
		for _, c := range candidates {
			if extFormats[strings.ToLower(path.Ext(c))] == j.opts.Format {
				keep = append(keep, c)
			}
		}
		candidates = keep
	}
	if len(candidates) == 0 {
		return nil, inputErr(ErrUnsupportedFormat, "the archive holds no importable file (.shp, .geojson, .csv, .gpkg, .kml, .fgb, .gpx, .topojson, .gml)")
	}
	sort.Strings(candidates)
	pick, chosen := candidates[0], false
	if len(candidates) > 1 {
		var names []string
		pick = ""
		for _, c := range candidates {
			base := strings.TrimSuffix(path.Base(c), path.Ext(c))
			names = append(names, base)
			if j.opts.Layer != "" && (strings.EqualFold(base, j.opts.Layer) || c == j.opts.Layer) {
				pick, chosen = c, true
			}
		}
		if pick == "" && format == FormatKMZ {
			pick = candidates[0] // doc.kml and friends: the first (root) KML is the document
			for _, c := range candidates {
				if strings.EqualFold(path.Base(c), "doc.kml") {
					pick = c
				}
			}
		}
		if pick == "" {
			return nil, &InputError{Kind: ErrLayerRequired, Reason: "the archive holds several files; set the layer to one of: " + strings.Join(names, ", ")}
		}
	}
	out, err := j.resolve(ctx, filepath.Join(dir, filepath.FromSlash(pick)), path.Base(pick), 1)
	if err != nil {
		return nil, err
	}
	out.layerChosen = chosen
	return out, nil
}

// safeEntryPath returns the cleaned relative path of an archive entry, or
// ErrUnsafePath for names that would land outside the extraction dir.
func safeEntryPath(f *zip.File) (string, error) {
	name := strings.ReplaceAll(f.Name, `\`, "/")
	bad := func(why string) error {
		return &InputError{Kind: ErrUnsafePath, Reason: fmt.Sprintf("entry %q %s", f.Name, why)}
	}
	if f.Mode()&fs.ModeSymlink != 0 {
		return "", bad("is a symbolic link")
	}
	if strings.HasPrefix(name, "/") || len(name) >= 2 && name[1] == ':' {
		return "", bad("is an absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", bad("climbs out of the archive")
		}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", bad("has a NUL byte")
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

func ignoredEntry(rel string) bool {
	for _, el := range strings.Split(rel, "/") {
		if el == "__MACOSX" || strings.HasPrefix(el, ".") {
			return true
		}
	}
	return false
}

// extract inflates f into dst, counting the bytes really produced (not the
// header's claim) against the size and ratio limits; already is what
// earlier entries expanded to.
func (j *job) extract(f *zip.File, dst string, already int64, in *input) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, &InputError{Kind: ErrMalformed, Reason: fmt.Sprintf("zip entry %q: %v", f.Name, err), Err: err}
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, inputErr(ErrMalformed, "the archive holds %q twice", f.Name)
		}
		return 0, fmt.Errorf("unpacking: %w", err)
	}
	defer out.Close()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := rc.Read(buf)
		if k > 0 {
			n += int64(k)
			if err := checkExpansion(already+n, in.size, j.opts.MaxUncompressedBytes, j.opts.MaxCompressionRatio, in.name); err != nil {
				return n, err
			}
			if _, err := out.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("unpacking: %w", err)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, &InputError{Kind: ErrMalformed, Reason: fmt.Sprintf("zip entry %q: %v", f.Name, rerr), Err: rerr}
		}
	}
}

// archiveLayers lists the importable files of a zip as layers.
func (j *job) archiveLayers(ctx context.Context, src Source) ([]Layer, error) {
	zr, err := zip.OpenReader(src.Path)
	if err != nil {
		return nil, &InputError{Kind: ErrMalformed, Reason: "bad zip archive", Err: err}
	}
	defer zr.Close()
	var out []Layer
	for _, f := range zr.File {
		rel, err := safeEntryPath(f)
		if err != nil {
			return nil, err
		}
		if rel == "" || ignoredEntry(rel) {
			continue
		}
		if _, ok := extFormats[strings.ToLower(path.Ext(rel))]; ok {
			out = append(out, Layer{Name: strings.TrimSuffix(path.Base(rel), path.Ext(rel)), GeometryType: "Unknown (any)", Features: -1})
		}
	}
	return out, nil
}
