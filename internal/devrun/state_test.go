package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestEnsureKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "secret.key")
	k1, err := ensureKeyFile(path, rand.Reader)
	if err != nil {
		t.Fatalf("first ensureKeyFile: %v", err)
	}
	if raw, err := base64.StdEncoding.DecodeString(k1); err != nil || len(raw) != 32 {
		t.Errorf("key %q: %d bytes (err %v), want base64 of 32 bytes", k1, len(raw), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
	k2, err := ensureKeyFile(path, iotest.ErrReader(errors.New("must not be read")))
	if err != nil || k2 != k1 {
		t.Errorf("second ensureKeyFile = %q, %v; want the first key %q", k2, err, k1)
	}

	// A damaged key is reported, never replaced.
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureKeyFile(path, rand.Reader); err == nil {
		t.Error("ensureKeyFile accepted a damaged key file")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key\n" {
		t.Errorf("damaged key file rewritten to %q", b)
	}

	if _, err := ensureKeyFile(filepath.Join(t.TempDir(), "k"), iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("ensureKeyFile with a failing random source succeeded")
	}
}

func TestSecretKeyFromEnv(t *testing.T) {
	dir := t.TempDir()
	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	t.Setenv("MERIDIAN_SECRET_KEY", good)
	if k, err := secretKey(dir); err != nil || k != good {
		t.Errorf("secretKey with MERIDIAN_SECRET_KEY set = %q, %v; want %q", k, err, good)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("secret.key written although MERIDIAN_SECRET_KEY is set (stat: %v)", err)
	}
	t.Setenv("MERIDIAN_SECRET_KEY", base64.StdEncoding.EncodeToString(make([]byte, 16)))
	if _, err := secretKey(dir); err == nil || !strings.Contains(err.Error(), "16 bytes") {
		t.Errorf("secretKey with a 16-byte key = %v, want an error naming the size", err)
	}
}

func TestLoadOrCreatePasswords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwords.json")
	n := 0
	gen := func() string { n++; return "pw" + string(rune('0'+n)) }
	pw, created, err := loadOrCreatePasswords(path, gen)
	if err != nil || !created {
		t.Fatalf("first load = %v, created %v; want created", err, created)
	}
	if pw != (passwords{Superuser: "pw1", Meta: "pw2", Data: "pw3"}) {
		t.Errorf("passwords = %+v, want pw1..pw3", pw)
	}
	if fi, _ := os.Stat(path); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("passwords file mode: want 0600")
	}
	again, created, err := loadOrCreatePasswords(path, gen)
	if err != nil || created || again != pw {
		t.Errorf("second load = %+v, created %v, %v; want %+v from the file", again, created, err, pw)
	}

	for name, content := range map[string]string{"bad JSON": "{", "missing field": `{"superuser":"a","meta":"b"}`} {
		p := filepath.Join(t.TempDir(), "passwords.json")
		os.WriteFile(p, []byte(content), 0o600)
		if _, _, err := loadOrCreatePasswords(p, gen); err == nil {
			t.Errorf("%s: loadOrCreatePasswords succeeded, want an error", name)
		}
	}
}

func TestUnreachableAncestor(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	closed := filepath.Join(root, "closed")
	open := filepath.Join(closed, "open", "state")
	if err := os.MkdirAll(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(closed, 0o750)
	if got := unreachableAncestor(open); got != closed {
		t.Errorf("unreachableAncestor(%s) = %q, want %q", open, got, closed)
	}
	os.Chmod(closed, 0o755)
	// t.TempDir's parent is private to us, so look from root's own level
	// only when it and its parents are open (true for /tmp on Debian).
	if got := unreachableAncestor(open); got != "" && !strings.HasPrefix(root, got) {
		t.Errorf("unreachableAncestor(%s) = %q, want none below %s", open, got, root)
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "it's", `a"b$c\d`, "post://u:p@h/db?x=1&y=2"} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printf %s = %q, %v; want %q", shellQuote(s), out, err, s)
		}
	}
}
