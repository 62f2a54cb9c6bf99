package clienterr

import (
	"errors"
	"fmt"
	"testing"
)

var (
	errBad  = Kind("source", "bad parameters")
	errFilt = Kind("filter", "invalid filters")
)

func TestErrorf(t *testing.T) {
	inner := Errorf(errFilt, ": unknown filter type %q", "like")
	outer := fmt.Errorf("compiling: %w", Errorf(errBad, ": filters: %w", inner))
	if !errors.Is(outer, errBad) || !errors.Is(outer, errFilt) {
		t.Errorf("errors.Is: %v %v", errors.Is(outer, errBad), errors.Is(outer, errFilt))
	}
	if got, want := outer.Error(), `compiling: source: bad parameters: filters: filter: invalid filters: unknown filter type "like"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	msg, ok := Message(outer)
	if want := `bad parameters: filters: invalid filters: unknown filter type "like"`; !ok || msg != want {
		t.Errorf("Message = %q, %v; want %q", msg, ok, want)
	}
	if msg, ok := Message(fmt.Errorf("x: %w", errBad)); !ok || msg != "bad parameters" {
		t.Errorf("Message of a bare kind = %q, %v", msg, ok)
	}
	if _, ok := Message(errors.New("other")); ok {
		t.Errorf("Message of another error: ok")
	}
}
