package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/tiles/internal/render"
)

// Encoding is a content coding a tile is answered in. This file is the
// one place that encodes tiles.
type Encoding int

// Encodings, from the least preferred.
const (
	Identity Encoding = iota
	Gzip
	Brotli
)

// String is the Content-Encoding token ("" for identity).
func (enc Encoding) String() string {
	switch enc {
	case Gzip:
		return "gzip"
	case Brotli:
		return "br"
	}
	return ""
}

// Negotiate picks the best encoding an Accept-Encoding value allows
// (brotli, then gzip, then identity). It does not allocate.
func Negotiate(acceptEncoding []byte) Encoding {
	switch {
	case Accepts(acceptEncoding, Brotli):
		return Brotli
	case Accepts(acceptEncoding, Gzip):
		return Gzip
	}
	return Identity
}

// Accepts reports whether an Accept-Encoding value allows enc (present
// and not with q=0). It does not allocate.
func Accepts(ae []byte, enc Encoding) bool {
	coding := enc.String()
	if coding == "" {
		return true
	}
	for len(ae) > 0 {
		var part []byte
		part, ae, _ = bytes.Cut(ae, []byte(","))
		name, params, _ := bytes.Cut(part, []byte(";"))
		if !bytes.EqualFold(bytes.TrimSpace(name), []byte(coding)) {
			continue
		}
		q := bytes.TrimSpace(params)
		if v, ok := bytes.CutPrefix(q, []byte("q=")); ok {
			if f, err := strconv.ParseFloat(b2s(bytes.TrimSpace(v)), 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// Tile is a finished tile as cached: gzip bytes (nil for an empty tile),
// strong ETags per content coding, and a brotli copy made on first demand.
type Tile struct {
	gz                   []byte
	etag, etagGz, etagBr string
	br                   atomic.Pointer[[]byte]
}

// NewTile makes a Tile of gzipped content (nil or empty: an empty tile).
func NewTile(gz []byte) *Tile {
	t := &Tile{gz: gz}
	if len(gz) > 0 {
		h := sha256.Sum256(gz)
		base := hex.EncodeToString(h[:12])
		t.etag, t.etagGz, t.etagBr = `"`+base+`"`, `"`+base+`-gz"`, `"`+base+`-br"`
	}
	return t
}

// Empty reports a tile with no features (answered 204).
func (t *Tile) Empty() bool { return len(t.gz) == 0 }

// Body returns the tile in enc: brotli is made once, identity is
// decompressed on each call.
func (t *Tile) Body(enc Encoding) ([]byte, error) {
	switch enc {
	case Gzip:
		return t.gz, nil
	case Brotli:
		if p := t.br.Load(); p != nil {
			return *p, nil
		}
		raw, err := render.Gunzip(t.gz)
		if err != nil {
			return nil, err
		}
		br := fasthttp.AppendBrotliBytesLevel(nil, raw, fasthttp.CompressBrotliDefaultCompression)
		t.br.Store(&br)
		return br, nil
	}
	return render.Gunzip(t.gz)
}

// ETag is the strong ETag of the tile in enc.
func (t *Tile) ETag(enc Encoding) string {
	switch enc {
	case Gzip:
		return t.etagGz
	case Brotli:
		return t.etagBr
	}
	return t.etag
}

// Matches reports whether an If-None-Match list names t (any of its
// encodings: the content is the same) or is "*". It does not allocate.
func (t *Tile) Matches(inm []byte) bool {
	for len(inm) > 0 {
		var tag []byte
		tag, inm, _ = bytes.Cut(inm, []byte(","))
		tag = bytes.TrimSpace(tag)
		tag = bytes.TrimPrefix(tag, []byte("W/"))
		if b2s(tag) == "*" || b2s(tag) == t.etag || b2s(tag) == t.etagGz || b2s(tag) == t.etagBr {
			return true
		}
	}
	return false
}

func (t *Tile) size() int64 { return int64(len(t.gz)) + 256 }

// Encoded forms travel between nodes as one version byte and the gzip.
const tileVersion = 1

func (t *Tile) marshal() []byte {
	b := make([]byte, 1+len(t.gz))
	b[0] = tileVersion
	copy(b[1:], t.gz)
	return b
}

func unmarshalTile(b []byte) (*Tile, error) {
	if len(b) == 0 || b[0] != tileVersion {
		return nil, errors.New("engine: bad cached tile")
	}
	var gz []byte
	if len(b) > 1 {
		gz = b[1:]
	}
	return NewTile(gz), nil
}

// b2s views b as a string without copying; the result must not be kept.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
