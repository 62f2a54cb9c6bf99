package textcheck_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meridian-gis/meridian/workers/importer/internal/textcheck"
)

func TestValidPassesThrough(t *testing.T) {
	in := "\xEF\xBB\xBFname,città\nZürich,東京\n" + strings.Repeat("ü", 100000)
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"whole", strings.NewReader(in)},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader(in))},
		{"half reads", iotest.HalfReader(strings.NewReader(in))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := io.ReadAll(textcheck.NewReader(tt.r))
			if err != nil {
				t.Fatalf("ReadAll error: %v", err)
			}
			if want := strings.TrimPrefix(in, "\xEF\xBB\xBF"); string(got) != want {
				t.Errorf("got %d bytes, want %d (BOM stripped)", len(got), len(want))
			}
		})
	}
}

func TestInvalidUTF8(t *testing.T) {
	in := "a,b\n1,2\nx,caf\xe9\n"
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		got, err := io.ReadAll(textcheck.NewReader(r))
		var ee *textcheck.EncodingError
		if !errors.As(err, &ee) {
			t.Fatalf("error = %v, want *EncodingError", err)
		}
		if ee.Offset != 13 || ee.Line != 3 {
			t.Errorf("EncodingError = %+v, want offset 13 line 3", ee)
		}
		if string(got) != in[:13] {
			t.Errorf("got %q before the error, want %q", got, in[:13])
		}
	}
}

func TestTruncatedRuneAtEOF(t *testing.T) {
	_, err := io.ReadAll(textcheck.NewReader(strings.NewReader("ab\xe6\x9d")))
	var ee *textcheck.EncodingError
	if !errors.As(err, &ee) || ee.Offset != 2 {
		t.Errorf("error = %v, want EncodingError at offset 2", err)
	}
}

func TestUTF16(t *testing.T) {
	_, err := io.ReadAll(textcheck.NewReader(bytes.NewReader([]byte{0xFF, 0xFE, 'a', 0})))
	if !errors.Is(err, textcheck.ErrUTF16) {
		t.Errorf("error = %v, want ErrUTF16", err)
	}
}

func TestLatin1(t *testing.T) {
	in := "name\nM\xfcnchen \x80 caf\xe9\n"
	if !textcheck.LooksLatin1([]byte(in)) {
		t.Errorf("LooksLatin1(%q) = false, want true", in)
	}
	if textcheck.LooksLatin1([]byte("M\xc3\xbcnchen caf\xe9")) {
		t.Errorf("LooksLatin1(mixed UTF-8) = true, want false")
	}
	if textcheck.LooksLatin1([]byte("plain ascii")) {
		t.Errorf("LooksLatin1(ascii) = true, want false")
	}
	got, err := io.ReadAll(textcheck.NewLatin1Reader(iotest.HalfReader(strings.NewReader(in))))
	if err != nil {
		t.Fatal(err)
	}
	if want := "name\nMünchen € café\n"; string(got) != want {
		t.Errorf("transcoded = %q, want %q", got, want)
	}
}
