package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/meridian-gis/meridian/internal/identity"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "user",
		Usage: "create|list",
		Short: "Create and list users (an operator's tool; people sign up and are invited in the web app)",
		Long: `Creates a user with a generated password, printed once on stdout, e.g. the
first administrator of an install that must not leave sign-up open:

  meridian user create --email admin@example.com --role admin --platform-admin
  meridian user list

A platform admin runs the install: the admin console, every organization,
their quotas. An organization's admin (--role admin) manages only theirs.`,
		CobraFunc: userCommand,
	})
}

func userCommand(cmd *cobra.Command) {
	n := needs{db: true}
	sub(cmd, "create", "Create a user and print their generated password", n, userCreate, func(c *cobra.Command) {
		c.Flags().String("email", "", "the user's email (required)")
		c.Flags().String("role", "viewer", "admin, editor, viewer or guest")
		c.Flags().String("org", identity.DefaultOrg, "organization id")
		c.Flags().String("name", "", "display name")
		c.Flags().Bool("if-absent", false, "print nothing and succeed when the email already has an account")
		c.Flags().Bool("platform-admin", false, "the user also administers the platform (admin console, every organization)")
	})
	sub(cmd, "list", "List users", n, userList, nil)
}

func userCreate(ctx context.Context, cfg *Config, _ []string) error {
	f := flagsOf(ctx).Flags()
	email, _ := f.GetString("email")
	roleName, _ := f.GetString("role")
	org, _ := f.GetString("org")
	name, _ := f.GetString("name")
	ifAbsent, _ := f.GetBool("if-absent")
	platform, _ := f.GetBool("platform-admin")
	if email == "" {
		return errors.New("--email is required")
	}
	role, err := identity.ParseRole(roleName)
	if err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := identity.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	nd, err := openNode(ctx, cfg, "user", needs{db: true}, false)
	if err != nil {
		return err
	}
	defer nd.close()
	err = pgx.BeginFunc(ctx, nd.meta, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO users (org_id, email, name, role, password_hash, email_verified_at, platform_admin)
			VALUES ($1, $2, $3, $4, $5, now(), $6) RETURNING id`, org, email, name, role, hash, platform).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO audit_log (org_id, actor_id, action, target, detail) VALUES ($1, 'cli', 'user.created', $2, jsonb_build_object('role', $3::text, 'platform_admin', $4::bool))`, org, id, string(role), platform)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		if ifAbsent {
			return nil
		}
		return fmt.Errorf("an account with email %s exists", email)
	}
	if errors.As(err, &pe) && pe.Code == "23503" {
		return fmt.Errorf("no organization %q", org)
	}
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	fmt.Println(password)
	return nil
}

func userList(ctx context.Context, cfg *Config, _ []string) error {
	nd, err := openNode(ctx, cfg, "user", needs{db: true}, false)
	if err != nil {
		return err
	}
	defer nd.close()
	rows, err := nd.meta.Query(ctx, `SELECT id, org_id, email, role, platform_admin, created_at, disabled_at IS NOT NULL FROM users ORDER BY org_id, lower(email)`)
	if err != nil {
		return fmt.Errorf("listing users: %w", err)
	}
	defer rows.Close()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tORG\tEMAIL\tROLE\tPLATFORM ADMIN\tCREATED\tDISABLED")
	for rows.Next() {
		var id, org, email, role string
		var created time.Time
		var platform, disabled bool
		if err := rows.Scan(&id, &org, &email, &role, &platform, &created, &disabled); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%v\n", id, org, email, role, platform, created.UTC().Format(time.RFC3339), disabled)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return w.Flush()
}
