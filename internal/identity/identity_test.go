package identity

import (
	"context"
	"strings"
	"testing"
)

func TestRoles(t *testing.T) {
	if !RoleAdmin.AtLeast(RoleEditor) || RoleViewer.AtLeast(RoleEditor) || !RoleGuest.AtLeast(RoleGuest) {
		t.Error("role order wrong")
	}
	if Role("root").AtLeast(RoleGuest) {
		t.Error("an unknown role grants something")
	}
	if r, err := ParseRole("builder"); err != nil || r != RoleEditor {
		t.Errorf("ParseRole(builder) = %q, %v", r, err)
	}
	if _, err := ParseRole("superuser"); err == nil {
		t.Error("ParseRole accepted superuser")
	}
}

func TestPassword(t *testing.T) {
	ctx := context.Background()
	h, err := HashPassword(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=32768,t=2,p=2$") {
		t.Errorf("hash %q", h)
	}
	if err := VerifyPassword(ctx, h, "correct horse battery"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := VerifyPassword(ctx, h, "correct horse batterx"); err != ErrMismatch {
		t.Errorf("wrong password: %v", err)
	}
	h2, _ := HashPassword(ctx, "correct horse battery")
	if h2 == h {
		t.Error("two hashes of one password are equal (no salt)")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=0,t=1,p=1$AA$AA", "$bcrypt$x", h[:len(h)-4]} {
		if err := VerifyPassword(ctx, bad, "correct horse battery"); err == nil {
			t.Errorf("VerifyPassword(%q) matched", bad)
		}
	}
	if _, err := HashPassword(ctx, "short"); err != ErrWeakPassword {
		t.Errorf("short password: %v", err)
	}
	if _, err := HashPassword(ctx, strings.Repeat("x", MaxPasswordLen+1)); err != ErrWeakPassword {
		t.Errorf("long password: %v", err)
	}
}

func TestSecret(t *testing.T) {
	a, ha := NewSecret("ms_")
	b, _ := NewSecret("ms_")
	if a == b || !strings.HasPrefix(a, "ms_") || len(a) < 40 {
		t.Errorf("secrets %q %q", a, b)
	}
	if string(HashSecret(a)) != string(ha) {
		t.Error("HashSecret differs from NewSecret's hash")
	}
}
