package jobspec

import "testing"

func TestTerminal(t *testing.T) {
	for s, want := range map[string]bool{StatusPending: false, StatusRunning: false, StatusSuccess: true,
		StatusFailure: true, StatusCancelled: true, "": false} {
		if Terminal(s) != want {
			t.Errorf("Terminal(%q) = %v, want %v", s, !want, want)
		}
	}
}
