package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// passwords are the cluster's passwords, kept in the state folder so that
// every run uses the same ones.
type passwords struct {
	// Superuser is the "postgres" superuser's password (set at initdb).
	Superuser string `json:"superuser"`
	// Meta is the metadata role's password.
	Meta string `json:"meta"`
	// Data is the data role's password.
	Data string `json:"data"`
}

// loadOrCreatePasswords reads path, or writes new random passwords there
// (0600) when it does not exist. newPassword makes one password.
func loadOrCreatePasswords(path string, newPassword func() string) (pw passwords, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &pw); err != nil {
			return pw, false, fmt.Errorf("reading %s: %w", path, err)
		}
		if pw.Superuser == "" || pw.Meta == "" || pw.Data == "" {
			return pw, false, fmt.Errorf("reading %s: a password is missing", path)
		}
		return pw, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return pw, false, fmt.Errorf("reading passwords: %w", err)
	}
	pw = passwords{Superuser: newPassword(), Meta: newPassword(), Data: newPassword()}
	b, _ = json.MarshalIndent(pw, "", "  ")
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return pw, false, fmt.Errorf("saving passwords: %w", err)
	}
	return pw, true, nil
}

// secretKey returns MERIDIAN_SECRET_KEY when set, else the key kept in
// stateDir/secret.key, which it creates (0600, base64 of 32 random bytes)
// on the first run. An existing file is never replaced: losing the key
// makes the stored connection credentials unreadable.
func secretKey(stateDir string) (string, error) {
	if k := os.Getenv("MERIDIAN_SECRET_KEY"); k != "" {
		if err := checkKey(k); err != nil {
			return "", fmt.Errorf("MERIDIAN_SECRET_KEY: %w", err)
		}
		return k, nil
	}
	return ensureKeyFile(filepath.Join(stateDir, "secret.key"), rand.Reader)
}

func ensureKeyFile(path string, random io.Reader) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k := strings.TrimSpace(string(b))
		if err := checkKey(k); err != nil {
			return "", fmt.Errorf("%s: %w (fix or move it away; a new key cannot read connections sealed with the old one)", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading secret key: %w", err)
	}
	var raw [32]byte
	if _, err := io.ReadFull(random, raw[:]); err != nil {
		return "", fmt.Errorf("generating secret key: %w", err)
	}
	k := base64.StdEncoding.EncodeToString(raw[:])
	if err := writeFileAtomic(path, []byte(k+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving secret key: %w", err)
	}
	return k, nil
}

// checkKey reports whether k is the base64 of 32 bytes.
func checkKey(k string) error {
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		return errors.New("not base64")
	}
	if len(raw) != 32 {
		return fmt.Errorf("decodes to %d bytes, want 32", len(raw))
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so a crash never leaves half a file.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// unreachableAncestor returns the first folder on the way to dir that
// other users cannot traverse (no o+x), or "" when there is none. When
// devrun runs as root, the cluster runs as the postgres user, which needs
// to reach its data folder.
func unreachableAncestor(dir string) string {
	dir = filepath.Clean(dir)
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// writeEnvFile writes stateDir/env (0600): shell exports to run
// bin/meridian by hand against this setup.
func writeEnvFile(stateDir string, db database, key string) error {
	var b strings.Builder
	b.WriteString("# Written by `make run` (internal/devrun). To use bin/meridian by hand:\n")
	b.WriteString("#   . .meridian/env && bin/meridian connection list\n")
	fmt.Fprintf(&b, "export MERIDIAN_DATABASE_URL=%s\n", shellQuote(db.metaURL))
	fmt.Fprintf(&b, "export MERIDIAN_SECRET_KEY=%s\n", shellQuote(key))
	if db.dataURL != "" {
		fmt.Fprintf(&b, "# the demo data database, as the data role (connection %q)\n", demoConnection)
		fmt.Fprintf(&b, "export MERIDIAN_DEMO_DATABASE_URL=%s\n", shellQuote(db.dataURL))
	}
	return writeFileAtomic(filepath.Join(stateDir, "env"), []byte(b.String()), 0o600)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
