// Package textcheck guards the text streams the importer parses itself
// (CSV, GeoJSON): it refuses invalid UTF-8 at the exact byte where it
// starts, instead of letting encoding/json replace it with U+FFFD or
// PostgreSQL reject a whole COPY batch; it strips a UTF-8 byte-order mark,
// refuses UTF-16, and can transcode Windows-1252/Latin-1 to UTF-8.
package textcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// EncodingError reports bytes that are not valid UTF-8.
type EncodingError struct {
	// Offset is the byte offset of the first bad byte in the stream.
	Offset int64
	// Line is the 1-based line holding it.
	Line int64
	// Reason says what is wrong.
	Reason string
}

func (e *EncodingError) Error() string {
	return fmt.Sprintf("%s at byte %d (line %d)", e.Reason, e.Offset, e.Line)
}

// ErrUTF16 is returned for a stream that starts with a UTF-16 byte-order mark.
var ErrUTF16 = errors.New("text is UTF-16; convert it to UTF-8")

// Reader validates (or transcodes) the text read through it.
type Reader struct {
	r        io.Reader
	latin1   bool
	buf      []byte
	carryBuf [4]byte // an incomplete rune held back from the last read
	carry    int
	out      []byte
	trans    []byte // transcoded output (Latin-1 mode)
	off      int64  // stream offset of the next byte handed out
	line     int64
	started  bool
	err      error
}

// NewReader returns a Reader that refuses invalid UTF-8.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, 64<<10), line: 1}
}

// NewLatin1Reader returns a Reader that transcodes Windows-1252 (a superset
// of the printable Latin-1 range) to UTF-8.
func NewLatin1Reader(r io.Reader) *Reader {
	rd := NewReader(r)
	rd.latin1 = true
	return rd
}

// Line returns the 1-based line of the next byte to be read.
func (r *Reader) Line() int64 { return r.line }

// Offset returns the number of bytes handed out so far (after BOM removal
// and transcoding).
func (r *Reader) Offset() int64 { return r.off }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
	}
	n := copy(p, r.out)
	r.line += int64(bytes.Count(r.out[:n], []byte{'\n'}))
	r.off += int64(n)
	r.out = r.out[n:]
	return n, nil
}

func (r *Reader) fill() {
	copy(r.buf, r.carryBuf[:r.carry])
	n, err := io.ReadAtLeast(r.r, r.buf[r.carry:], 1)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	chunk := r.buf[:r.carry+n]
	r.carry = 0
	if !r.started && (len(chunk) >= 3 || err != nil) {
		r.started = true
		switch {
		case bytes.HasPrefix(chunk, []byte{0xEF, 0xBB, 0xBF}):
			chunk = chunk[3:]
		case bytes.HasPrefix(chunk, []byte{0xFF, 0xFE}), bytes.HasPrefix(chunk, []byte{0xFE, 0xFF}):
			r.err = ErrUTF16
			return
		}
	} else if !r.started {
		r.carry = copy(r.carryBuf[:], chunk)
		if err != nil {
			r.err = err
		}
		return
	}
	if r.latin1 {
		r.trans = appendCP1252(r.trans[:0], chunk)
		r.out = r.trans
		r.err = err
		return
	}
	cut := len(chunk)
	if err == nil {
		// Hold back a rune split across reads.
		for k := 1; k <= 3 && k <= len(chunk); k++ {
			c := chunk[len(chunk)-k]
			if c < 0x80 {
				break
			}
			if utf8.RuneStart(c) {
				if !utf8.FullRune(chunk[len(chunk)-k:]) {
					cut = len(chunk) - k
				}
				break
			}
		}
	}
	good := chunk[:cut]
	if !utf8.Valid(good) {
		i := 0
		for i < len(good) {
			c, size := utf8.DecodeRune(good[i:])
			if c == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		bad := r.off + int64(i)
		line := r.line + int64(bytes.Count(good[:i], []byte{'\n'}))
		r.out = good[:i]
		r.err = &EncodingError{Offset: bad, Line: line, Reason: fmt.Sprintf("invalid UTF-8 byte 0x%02x", good[i])}
		return
	}
	r.out = good
	r.carry = copy(r.carryBuf[:], chunk[cut:])
	if err != nil {
		r.err = err
	}
}

// cp1252 maps 0x80–0x9F; the rest of the high half is Latin-1.
var cp1252 = [32]rune{
	0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
	0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
}

func appendCP1252(dst, src []byte) []byte {
	for _, c := range src {
		switch {
		case c < 0x80:
			dst = append(dst, c)
		case c < 0xA0:
			dst = utf8.AppendRune(dst, cp1252[c-0x80])
		default:
			dst = utf8.AppendRune(dst, rune(c))
		}
	}
	return dst
}

// LooksLatin1 reports whether sample (the start of a file) is not valid
// UTF-8 but reads as Windows-1252 text: it has high bytes, none of them
// forms a UTF-8 multi-byte sequence, and it holds no NUL or other binary
// control bytes. A truncated final rune is ignored.
func LooksLatin1(sample []byte) bool {
	if utf8.Valid(sample) {
		return false
	}
	high := 0
	for i := 0; i < len(sample); {
		c := sample[i]
		if c < 0x80 {
			if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
				return false
			}
			i++
			continue
		}
		high++
		if r, size := utf8.DecodeRune(sample[i:]); r != utf8.RuneError && size > 1 {
			return false // a real UTF-8 sequence: the file is broken UTF-8, not Latin-1
		}
		i++
	}
	return high > 0
}
