package jsonscan_test

import (
	"testing"

	"github.com/meridian-gis/meridian/workers/importer/internal/jsonscan"
)

func TestObjectAndValue(t *testing.T) {
	in := []byte(` { "a" : 1.5e3, "b\"q": "x\\\"y", "c": {"d": [1, "]", {"e": null}]}, "f": true } `)
	var keys []string
	var vals []string
	end, err := jsonscan.Object(in, 0, func(key []byte, esc bool, vs, ve int) error {
		k := string(key)
		if esc {
			var err error
			if k, err = jsonscan.Unquote(key); err != nil {
				return err
			}
		}
		keys = append(keys, k)
		vals = append(vals, string(in[vs:ve]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"a", `b"q`, "c", "f"}
	wantVals := []string{"1.5e3", `"x\\\"y"`, `{"d": [1, "]", {"e": null}]}`, "true"}
	for i := range wantKeys {
		if keys[i] != wantKeys[i] || vals[i] != wantVals[i] {
			t.Errorf("member %d = %q: %q, want %q: %q", i, keys[i], vals[i], wantKeys[i], wantVals[i])
		}
	}
	if end != len(in)-1 {
		t.Errorf("end = %d, want %d", end, len(in)-1)
	}
	v, _, err := jsonscan.Number(in, 8)
	if err != nil || v != 1500 {
		t.Errorf("Number = %v, %v", v, err)
	}
}

func TestMalformedNeverPanics(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `[`, `[1,`, `"abc`, `{"a":[1,2}`, `{1:2}`, `{"a" 1}`} {
		b := []byte(in)
		jsonscan.Object(b, 0, func([]byte, bool, int, int) error { return nil })
		jsonscan.Array(b, 0, func(s int) (int, error) { return jsonscan.Value(b, s) })
		jsonscan.Value(b, 0)
		jsonscan.Number(b, 0)
	}
	// Value checks nesting, not syntax: unterminated values are errors.
	for _, in := range []string{`{`, `{"a"`, `{"a":1,`, `[`, `[1,`, `"abc`, `{"a":"}`} {
		if _, err := jsonscan.Value([]byte(in), 0); err == nil {
			t.Errorf("Value(%q) accepted an unterminated value", in)
		}
	}
}
