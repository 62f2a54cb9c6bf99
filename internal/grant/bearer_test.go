package grant

import "testing"

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name, auth, param, want string
	}{
		{"bearer", "Bearer abc", "", "abc"},
		{"bearer lower case", "bearer abc", "", "abc"},
		{"bearer spaces", "Bearer   abc  ", "", "abc"},
		{"bearer undefined is none", "Bearer undefined", "", ""},
		{"bearer null is none", "Bearer null", "", ""},
		{"bearer undefined falls back to the parameter", "Bearer undefined", "qq", "qq"},
		{"query", "", "qq", "qq"},
		{"query undefined is none", "", "undefined", ""},
		{"header wins", "Bearer hh", "qq", "hh"},
		{"basic is not a token", "Basic dXNlcjpwYXNz", "", ""},
		{"bearer without token", "Bearer", "", ""},
		{"none", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BearerToken(tt.auth, tt.param); got != tt.want {
				t.Errorf("BearerToken(%q, %q) = %q, want %q", tt.auth, tt.param, got, tt.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { BearerToken("Bearer abc", "q") }); n != 0 {
		t.Errorf("BearerToken allocates %v times", n)
	}
}
