package static

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The web apps' sources: each app's folder holds its index.html and the
// bundle of its scripts and styles (dist/, built from web/ by `make
// static`); common/ holds what they all use (the icon). Pages name their
// files by relative paths (../common/favicon.svg, dist/admin.js).
var (
	// webAppPages are the apps' pages.
	webAppPages = []webAppPage{
		{"workspace/index.html", "index.html", "workspace/dist/workspace.js", "The workspace"},
		{"accounts/index.html", "acc/index.html", "accounts/dist/accounts.js", "The accounts app"},
		{"admin/index.html", "admin/index.html", "admin/dist/admin.js", "The admin console"},
		{"builder/index.html", "builder/index.html", "builder/dist/builder.js", "The Builder"},
	}
	// webAssetDirs are the folders whose other files become assets.
	webAssetDirs = []string{"common", "workspace", "accounts", "admin", "builder"}
)

// webAppPage is an app's page (src), where it is served (dst), its
// bundle's script and the app's name.
type webAppPage struct{ src, dst, bundle, name string }

// notBuilt stands in for an app's page when its bundle was not built
// (the dist/ folders come from web/ by `make static`).
func notBuilt(name string) []byte {
	return []byte(`<!doctype html><html lang="en"><meta charset="utf-8"><title>Meridian</title>
<body><h1>` + name + ` is not built into this binary</h1>
<p>Run <code>make static</code> (npm ci and the esbuild bundles in web/), then build again.</p></body></html>`)
}

// AssetDir is the folder of the versioned assets in WebApps.
const AssetDir = "assets"

// WebApps returns the web apps laid out as the edge serves them, one path
// per URL path:
//
//	index.html                      the workspace app, at /
//	acc/index.html                  the accounts app, at /acc/
//	admin/index.html                the admin console, at /admin/
//	builder/index.html              the Builder, at /maps, /map/{id} and /data
//	assets/<name>.<hash>.<ext>      every script, style sheet and image
//
// An asset's name carries a hash of its content, and the pages name the
// assets by those names, so a changed file gets a new URL: assets may be
// cached for good, the pages must be revalidated. The result is built
// once and shared.
func WebApps() (fs.FS, error) { return webApps() }

var webApps = sync.OnceValues(func() (fs.FS, error) { return BuildWebApps(files) })

// assetRef finds the src and href attributes of a page.
var assetRef = regexp.MustCompile(`(\s(?:src|href)=")([^"]*)(")`)

// BuildWebApps builds WebApps from fsys, laid out as this package's
// sources (workspace/, accounts/, admin/, builder/, common/). It fails
// when a page names a relative file that does not exist, and on any HTML
// other than the apps' pages. An app whose bundle is missing gets a page
// saying how to build it.
func BuildWebApps(fsys fs.FS) (fs.FS, error) {
	out := &memFS{files: map[string][]byte{}}
	served := map[string]string{} // source path -> served path
	for _, dir := range webAssetDirs {
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if path.Ext(p) == ".html" {
				if !slices.ContainsFunc(webAppPages, func(pg webAppPage) bool { return pg.src == p }) {
					return fmt.Errorf("%s: only the apps' index.html files are pages", p)
				}
				return nil
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			name := path.Join(AssetDir, versioned(path.Base(p), b))
			if prev, ok := out.files[name]; ok && !bytes.Equal(prev, b) {
				return fmt.Errorf("%s: two different files are published as %s", p, name)
			}
			out.files[name] = b
			served[p] = name
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the web apps: %w", err)
		}
	}
	for _, pg := range webAppPages {
		b, err := fs.ReadFile(fsys, pg.src)
		if err != nil {
			return nil, fmt.Errorf("reading the web apps: %w", err)
		}
		if _, err := fs.Stat(fsys, pg.bundle); err != nil {
			out.files[pg.dst] = notBuilt(pg.name)
			continue
		}
		if out.files[pg.dst], err = linkAssets(b, path.Dir(pg.src), served); err != nil {
			return nil, fmt.Errorf("%s: %w", pg.src, err)
		}
	}
	out.index()
	return out, nil
}

// versioned inserts a hash of b before name's extension:
// meridian.js -> meridian.1a2b3c4d5e.js.
func versioned(name string, b []byte) string {
	sum := sha256.Sum256(b)
	ext := path.Ext(name)
	return strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:5]) + ext
}

// linkAssets points the page's relative src and href attributes (relative
// to dir) at the assets' served paths. Absolute paths, fragments and
// URLs with a scheme are left alone.
func linkAssets(page []byte, dir string, served map[string]string) ([]byte, error) {
	var errs []error
	out := assetRef.ReplaceAllFunc(page, func(m []byte) []byte {
		sub := assetRef.FindSubmatch(m)
		ref := string(sub[2])
		if ref == "" || strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "#") || strings.Contains(ref, ":") {
			return m
		}
		name, ok := served[path.Join(dir, ref)]
		if !ok {
			errs = append(errs, fmt.Errorf("%q names no asset", ref))
			return m
		}
		return slices.Concat(sub[1], []byte("/"+name), sub[3])
	})
	return out, errors.Join(errs...)
}

// memFS is a read-only file system in memory. Its files have no
// modification time.
type memFS struct {
	files map[string][]byte
	dirs  map[string][]fs.DirEntry // every folder (".", "acc", …) and its entries, sorted
}

// index lists the folders holding the files.
func (m *memFS) index() {
	m.dirs = map[string][]fs.DirEntry{".": nil}
	seen := map[string]bool{}
	add := func(dir string, info memInfo) {
		if key := dir + "/" + info.name; !seen[key] {
			seen[key] = true
			m.dirs[dir] = append(m.dirs[dir], fs.FileInfoToDirEntry(info))
		}
	}
	for name, b := range m.files {
		add(path.Dir(name), memInfo{name: path.Base(name), size: int64(len(b))})
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := m.dirs[d]; !ok {
				m.dirs[d] = nil
			}
			add(path.Dir(d), memInfo{name: path.Base(d), dir: true})
		}
	}
	for _, ents := range m.dirs {
		slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
}

// Open implements fs.FS.
func (m *memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if b, ok := m.files[name]; ok {
		return &memFile{Reader: bytes.NewReader(b), info: memInfo{name: path.Base(name), size: int64(len(b))}}, nil
	}
	if ents, ok := m.dirs[name]; ok {
		return &memDir{info: memInfo{name: path.Base(name), dir: true}, entries: ents}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ReadFile implements fs.ReadFileFS.
func (m *memFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	b, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

// memFile is an open file: a bytes.Reader, so it also seeks (which
// http.ServeContent needs) and reads at offsets.
type memFile struct {
	*bytes.Reader
	info memInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

// memDir is an open folder.
type memDir struct {
	info    memInfo
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *memDir) Close() error               { return nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}

// memInfo describes a file or folder of a memFS.
type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
